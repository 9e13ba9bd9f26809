//! Frames: a buffer to its packet (AV1 records and temporal delimiters, composition time,
//! nanoseconds), the tracks that share a timestamp, the tags written, SequenceEnd at EOS.

use super::*;

impl FlvMux {
    /// For AV1 without codec_data: the av1C of the first queued temporal unit of each such
    /// pad, so the first header set carries it.
    pub(super) fn av1_records_from_queue(
        &self,
        pads: &[super::super::FlvMuxPad],
    ) -> Result<(), gst::FlowError> {
        for pad in pads {
            let mut st = pad.imp().state();
            let from_stream = st
                .config
                .as_ref()
                .is_some_and(|c| c.sequence == Sequence::FromStream);
            if !from_stream || st.record.is_some() {
                continue;
            }
            let Some(buf) = pad.peek_buffer() else {
                continue;
            };
            let map = buf
                .map_readable()
                .map_err(|_| self.error(pad, "cannot map a buffer"))?;
            match codecs::av1c_from_temporal_unit(&map) {
                Ok(record) => st.record = Some(record),
                Err(e) => return Err(self.av1_error(pad, &e)),
            }
        }
        Ok(())
    }

    pub(super) fn av1_error(
        &self,
        pad: &super::super::FlvMuxPad,
        e: &codecs::RecordError,
    ) -> gst::FlowError {
        self.error(
            pad,
            format!(
                "{e}: the caps have no codec_data, so the stream must start with a keyframe \
                 temporal unit holding the sequence header (av1parse puts one there)"
            ),
        )
    }

    /// Takes one buffer of `pad` apart: timing, keyframe, payload; an AV1 keyframe with a
    /// new sequence header asks for a new SequenceStart.
    pub(super) fn frame(
        &self,
        pad: &super::super::FlvMuxPad,
        buffer: gst::Buffer,
        started: &Started,
        settings: &Settings,
    ) -> Result<Frame, gst::FlowError> {
        let mut timing = timing(
            pad.upcast_ref(),
            &buffer,
            started,
            settings.timestamp_offset_nano,
        );
        if timing.ms < started.last_ms {
            // Never backwards, across tracks too: RTMP peers expect that.
            gst::debug!(
                CAT,
                obj = pad,
                "timestamp {} ms raised to {} ms",
                timing.ms,
                started.last_ms
            );
            timing.ms = started.last_ms;
            timing.nanos = 0;
        }
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let duration = buffer.duration();
        let map = buffer
            .into_mapped_buffer_readable()
            .map_err(|_| self.error(pad, "cannot map a buffer"))?;
        let mut st = pad.imp().state();
        let Some(config) = st.config.clone() else {
            drop(st);
            return Err(self.error(pad, "a buffer arrived before any caps"));
        };
        let mut data = Payload::Mapped(map);
        if config.codec == Codec::Video(VideoCodec::FourCc(FourCc::AV01)) {
            if config.sequence == Sequence::FromStream && (keyframe || st.record.is_none()) {
                match codecs::av1c_from_temporal_unit(data.as_slice()) {
                    Ok(record) if st.record.as_ref() != Some(&record) => {
                        if st.record.is_some() {
                            gst::info!(CAT, obj = pad, "new AV1 sequence header");
                        }
                        st.record = Some(record);
                        st.needs_header = true;
                    }
                    Ok(_) => {}
                    Err(e) if st.record.is_none() => {
                        drop(st);
                        return Err(self.av1_error(pad, &e));
                    }
                    Err(_) => {}
                }
            }
            // As OBS sends AV1: the tag is the temporal unit.
            if let Some(stripped) = codecs::av1_strip_temporal_delimiters(data.as_slice()) {
                data = Payload::Owned(stripped);
            }
        }
        let track = st.track;
        drop(st);
        Ok(Frame {
            pad: pad.clone(),
            track,
            config,
            keyframe,
            timing,
            duration,
            data,
        })
    }

    /// With `many-tracks`: the queued buffers of other tracks of the same kind with exactly
    /// the lead frame's timestamp, FourCC signalling, frame type and nothing to announce
    /// first, taken to share its message.
    pub(super) fn gather(
        &self,
        pads: &[super::super::FlvMuxPad],
        frames: &mut Vec<Frame>,
        started: &Started,
        settings: &Settings,
    ) -> Result<(), gst::FlowError> {
        let lead = &frames[0];
        if lead.config.codec.fourcc().is_none() {
            return Ok(());
        }
        let (kind, lead_timing, lead_key) = (lead.config.codec.kind(), lead.timing, lead.keyframe);
        let lead_pad = lead.pad.clone();
        for pad in pads {
            if *pad == lead_pad {
                continue;
            }
            {
                let st = pad.imp().state();
                let Some(config) = &st.config else { continue };
                if st.kind != kind
                    || st.needs_header
                    || config.codec.fourcc().is_none()
                    || config.sequence == Sequence::FromStream
                {
                    continue;
                }
            }
            let Some(buf) = pad.peek_buffer() else {
                continue;
            };
            let key = !buf.flags().contains(gst::BufferFlags::DELTA_UNIT);
            let t = timing(
                pad.upcast_ref(),
                &buf,
                started,
                settings.timestamp_offset_nano,
            );
            if t.ms != lead_timing.ms
                || t.nanos != lead_timing.nanos
                || (kind == MediaKind::Video && key != lead_key)
            {
                continue;
            }
            let Some(buf) = pad.pop_buffer() else {
                continue;
            };
            frames.push(self.frame(pad, buf, started, settings)?);
        }
        Ok(())
    }

    /// Writes `frames` (one, or several of one kind with one timestamp) after any header
    /// their tracks need first.
    pub(super) fn write_frames(
        &self,
        frames: &[Frame],
        pads: &[super::super::FlvMuxPad],
        settings: &Settings,
        out: &mut Vec<gst::Buffer>,
    ) -> Result<(), gst::FlowError> {
        let lead = &frames[0];
        let ts = lead.timing.ms;
        let mut refresh = false;
        for f in frames {
            let mut st = f.pad.imp().state();
            if !(st.needs_header && st.header_ready()) {
                continue;
            }
            let new_track = !st.in_metadata;
            st.needs_header = false;
            st.in_metadata = true;
            let headers = self.track_headers(&f.pad, &st, ts)?;
            drop(st);
            gst::debug!(CAT, obj = f.pad, "new decoder configuration at {ts} ms");
            if new_track {
                out.push(self.metadata_buffer(pads, settings));
            }
            out.extend(headers);
            refresh = true;
        }
        if refresh {
            let set = self.header_set(pads, settings, ts, false)?;
            self.set_header_caps(&set);
        }
        let kind = lead.config.codec.kind();
        let mut buffer = if frames.len() == 1 {
            let p = lead.packet();
            self.tag_buffer(&lead.pad, kind, ts, |b| eflv::write_packet(&p, b))?
        } else {
            let packets: Vec<Packet<'_>> = frames.iter().map(Frame::packet).collect();
            gst::log!(
                CAT,
                imp = self,
                "{} tracks in one message at {ts} ms",
                packets.len()
            );
            self.tag_buffer(&lead.pad, kind, ts, |b| eflv::write_tracks(&packets, b))?
        };
        let b = buffer.get_mut().expect("new buffer");
        b.set_pts(lead.timing.running_time);
        b.set_duration(lead.duration);
        if kind == MediaKind::Video && !lead.keyframe {
            b.set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        if let Some(pts) = lead.timing.running_time {
            self.obj()
                .set_position(pts + lead.duration.unwrap_or(gst::ClockTime::ZERO));
        }
        out.push(buffer);
        Ok(())
    }

    /// At EOS: a SequenceEnd for every announced video track (what FFmpeg and flvmux write).
    pub(super) fn end_tags(
        &self,
        pads: &[super::super::FlvMuxPad],
        started: &Started,
        out: &mut Vec<gst::Buffer>,
    ) -> Result<(), gst::FlowError> {
        for pad in pads {
            let st = pad.imp().state();
            let Some(config) = &st.config else { continue };
            if st.kind != MediaKind::Video || !st.in_metadata || config.sequence == Sequence::None {
                continue;
            }
            let p = control_packet(st.track, config, PacketKind::SequenceEnd, &[]);
            out.push(
                self.tag_buffer(pad, MediaKind::Video, started.last_ms, |b| {
                    eflv::write_packet(&p, b)
                })?,
            );
        }
        Ok(())
    }
}
