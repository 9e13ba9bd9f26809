//! The header set: onMetaData, each track's SequenceStart and colorInfo, the FLV header, and
//! the caps' `streamheader` that carries them.

use super::*;

impl FlvMux {
    /// The SequenceStart (if the codec has one) and colorInfo tags of a track.
    pub(super) fn track_headers(
        &self,
        pad: &super::super::FlvMuxPad,
        st: &PadState,
        ts: u64,
    ) -> Result<Vec<gst::Buffer>, gst::FlowError> {
        let Some(config) = &st.config else {
            return Ok(Vec::new());
        };
        let kind = config.codec.kind();
        let mut flags = gst::BufferFlags::HEADER;
        if kind == MediaKind::Video {
            // Nobody should start playing at a decoder configuration.
            flags |= gst::BufferFlags::DELTA_UNIT;
        }
        let mut out = Vec::new();
        if config.sequence != Sequence::None {
            let record = st.record.as_deref().unwrap_or(&[]);
            let p = control_packet(st.track, config, PacketKind::SequenceStart, record);
            out.push(self.tag_buffer(pad, kind, ts, |b| eflv::write_packet(&p, b))?);
        }
        if let Some(color) = &config.color {
            let amf = amf0::encode_all(&color.to_amf());
            let p = control_packet(st.track, config, PacketKind::Metadata, &amf);
            out.push(self.tag_buffer(pad, kind, ts, |b| eflv::write_packet(&p, b))?);
        }
        for b in &mut out {
            b.get_mut().expect("new buffer").set_flags(flags);
        }
        Ok(out)
    }

    /// The onMetaData script tag: track 0 in the top-level fields, other tracks in
    /// `videoTrackIdInfoMap`/`audioTrackIdInfoMap` keyed by the track id. Always at
    /// timestamp 0, also when sent again mid-stream: FFmpeg reads a later-stamped
    /// onMetaData as a text stream.
    pub(super) fn metadata_buffer(
        &self,
        pads: &[super::super::FlvMuxPad],
        settings: &Settings,
    ) -> gst::Buffer {
        let mut props: Vec<(String, Value)> = Vec::new();
        let mut video_map = Vec::new();
        let mut audio_map = Vec::new();
        for pad in pads {
            let st = pad.imp().state();
            let Some(config) = &st.config else { continue };
            let fields = config.metadata(st.track);
            if st.track == 0 {
                props.extend(fields.into_iter().map(|(k, v)| (k.to_string(), v)));
                continue;
            }
            let entry = (st.track.to_string(), Value::object(fields));
            match st.kind {
                MediaKind::Video => video_map.push(entry),
                MediaKind::Audio => audio_map.push(entry),
            }
        }
        for (name, map) in [
            ("videoTrackIdInfoMap", video_map),
            ("audioTrackIdInfoMap", audio_map),
        ] {
            if !map.is_empty() {
                props.push((name.to_string(), Value::object(map)));
            }
        }
        props.push(("encoder".into(), Value::String(settings.encoder.clone())));
        props.push((
            "metadatacreator".into(),
            Value::String(settings.metadatacreator.clone()),
        ));
        let body =
            amf0::encode_all(&[Value::String("onMetaData".into()), Value::ecma_array(props)]);
        let tag = Tag {
            tag_type: flv::TAG_TYPE_SCRIPT,
            timestamp: 0,
            stream_id: 0,
            data: body,
        };
        let mut out = BytesMut::with_capacity(tag.encoded_len());
        // A metadata object never comes near the 16 MiB tag limit.
        flv::write_tag(&tag, &mut out).expect("onMetaData fits a tag");
        let mut buf = gst::Buffer::from_slice(out.freeze());
        buf.get_mut()
            .expect("new buffer")
            .set_flags(gst::BufferFlags::HEADER);
        buf
    }

    /// FLV header, onMetaData and every ready track's headers, at `ts`. With `mark`, the
    /// tracks count as announced (the first header set).
    pub(super) fn header_set(
        &self,
        pads: &[super::super::FlvMuxPad],
        settings: &Settings,
        ts: u64,
        mark: bool,
    ) -> Result<Vec<gst::Buffer>, gst::FlowError> {
        let kinds: Vec<MediaKind> = pads.iter().map(|p| p.imp().state().kind).collect();
        let header = FlvHeader::new(
            kinds.contains(&MediaKind::Audio),
            kinds.contains(&MediaKind::Video),
        );
        let mut bytes = BytesMut::new();
        flv::write_header(&header, &mut bytes);
        let mut flv_header = gst::Buffer::from_slice(bytes.freeze());
        flv_header
            .get_mut()
            .expect("new buffer")
            .set_flags(gst::BufferFlags::HEADER);
        let mut set = vec![flv_header, self.metadata_buffer(pads, settings)];
        for pad in pads {
            let mut st = pad.imp().state();
            if st.config.is_none() {
                continue;
            }
            if st.header_ready() {
                set.extend(self.track_headers(pad, &st, ts)?);
                if mark {
                    st.needs_header = false;
                }
            }
            if mark {
                st.in_metadata = true;
            }
        }
        Ok(set)
    }

    /// Puts `set` into the src caps' `streamheader`.
    pub(super) fn set_header_caps(&self, set: &[gst::Buffer]) {
        let headers = gst::Array::new(set.iter().map(|b| b.copy().to_send_value()));
        let caps = gst::Caps::builder("video/x-flv")
            .field("streamheader", headers)
            .build();
        gst::debug!(
            CAT,
            imp = self,
            "src caps with {} header buffers",
            set.len()
        );
        self.obj().set_src_caps(&caps);
    }
}
