//! AMF0 codec throughput on the message every RTMP session starts with: the `connect`
//! command (type 20), as FFmpeg sends it when publishing with enhanced codecs.

use criterion::{Criterion, criterion_group, criterion_main};
use rsrtmp_engine::amf0::{self, Value};
use std::hint::black_box;

fn connect_command() -> Vec<Value> {
    vec![
        "connect".into(),
        1.0.into(),
        Value::object([
            ("app", "live".into()),
            ("type", "nonprivate".into()),
            ("flashVer", "FMLE/3.0 (compatible; Lavf61.7.100)".into()),
            ("swfUrl", "rtmp://media.example.com:1935/live".into()),
            ("tcUrl", "rtmp://media.example.com:1935/live".into()),
            ("fpad", false.into()),
            ("capabilities", 15.0.into()),
            ("audioCodecs", 4071.0.into()),
            ("videoCodecs", 252.0.into()),
            ("videoFunction", 1.0.into()),
            ("objectEncoding", 0.0.into()),
            (
                "fourCcList",
                Value::strict_array(["av01", "hvc1", "vp09", "avc1"].map(Value::from)),
            ),
        ]),
    ]
}

fn bench(c: &mut Criterion) {
    let values = connect_command();
    let body = amf0::encode_command_payload(20, &values);
    let mut group = c.benchmark_group("amf0_connect");
    group.throughput(criterion::Throughput::Bytes(body.len() as u64));
    group.bench_function("decode", |b| {
        b.iter(|| amf0::decode_command_payload(20, black_box(&body)).unwrap())
    });
    group.bench_function("encode", |b| {
        b.iter(|| amf0::encode_command_payload(20, black_box(&values)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
