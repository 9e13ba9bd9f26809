pub use rsrtmp_engine as rtmp;
