//! What a server session does with what the client sends: media for a publishing stream
//! becomes an event, commands are answered or reported as requests (see the parent module).

use super::*;

impl ServerSession {
    pub(super) fn process(&mut self) {
        loop {
            if self.closed.is_some() {
                return;
            }
            match self.conn.next() {
                Ok(Some(Inbound::Message(m))) => {
                    if let Err(e) = self.on_message(m) {
                        return self.fail(e);
                    }
                }
                // StreamBegin and friends are server → client; SetBufferLength needs no action.
                Ok(Some(Inbound::User(_))) => {}
                Ok(None) => break,
                Err(e) => return self.fail(e),
            }
        }
        self.conn.check_ack();
    }

    fn on_message(&mut self, m: Message) -> Result<(), SessionError> {
        match m.type_id {
            msg_type::COMMAND_AMF0 | msg_type::COMMAND_AMF3 => {
                let cmd = Command::parse(&m)?;
                self.on_command(m.stream_id, cmd)
            }
            msg_type::AUDIO | msg_type::VIDEO | msg_type::DATA_AMF0 | msg_type::DATA_AMF3 => {
                if !matches!(self.stream(m.stream_id), Some(StreamState::Publishing(_))) {
                    // Media for a stream that is not publishing is dropped, as nginx does.
                    return Ok(());
                }
                let message = if m.type_id == msg_type::DATA_AMF0 {
                    match leading_string(&m.payload) {
                        Some(("@setDataFrame", n)) => Message {
                            payload: m.payload.slice(n..),
                            ..m
                        },
                        _ => m,
                    }
                } else {
                    m
                };
                self.events.push_back(ServerEvent::Media {
                    stream_id: message.stream_id,
                    message,
                });
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub(super) fn on_command(&mut self, msg_stream: u32, cmd: Command) -> Result<(), SessionError> {
        let typed = cmd.typed()?;
        if let NetCommand::Connect(c) = typed {
            if self.phase != Phase::AwaitConnect {
                return Err(SessionError::Protocol(format!(
                    "second connect (transaction {}) on one connection",
                    c.transaction_id
                )));
            }
            self.phase = Phase::ConnectRequested {
                txn: c.transaction_id,
                object_encoding: c.object_encoding.unwrap_or(0.0),
            };
            self.client_caps = crate::session::EnhancedCaps::from_properties(&c.properties);
            let (app, query) = c.app_and_query();
            self.events.push_back(ServerEvent::ConnectRequest {
                app: app.to_owned(),
                query: query.map(str::to_owned),
                tc_url: c.tc_url.clone(),
                connect: Box::new(c),
            });
            return Ok(());
        }
        if matches!(self.phase, Phase::ConnectRequested { .. }) {
            if self.early.len() >= MAX_EARLY_COMMANDS {
                return Err(SessionError::Protocol(format!(
                    "more than {MAX_EARLY_COMMANDS} commands (the last {:?}) before the connect \
                     was answered",
                    cmd.name
                )));
            }
            self.early.push_back((msg_stream, cmd));
            return Ok(());
        }
        if self.phase != Phase::Connected {
            return Err(SessionError::Protocol(format!(
                "command {:?} before the connect was accepted",
                cmd.name
            )));
        }
        match typed {
            NetCommand::CreateStream { transaction_id } => {
                if self.streams.len() as u32 >= self.config.max_streams {
                    let st = Status::new(
                        StatusCode::CallFailed,
                        format!("stream limit {} reached", self.config.max_streams),
                    );
                    self.send_cmd(0, &command::error(transaction_id, &st));
                    return Ok(());
                }
                let id = self.next_stream;
                self.next_stream += 1;
                self.streams.push((id, StreamState::Created));
                self.send_cmd(
                    0,
                    &command::result(transaction_id, Value::Null, vec![Value::Number(id.into())]),
                );
            }
            // Transaction id 0 marks a notification: rtmp2 sends these two that way and logs
            // a warning for a `_result` nobody asked for.
            NetCommand::ReleaseStream { transaction_id, .. }
            | NetCommand::FcPublish { transaction_id, .. } => {
                if transaction_id != 0.0 {
                    self.send_cmd(
                        0,
                        &command::result(transaction_id, Value::Null, vec![Value::Undefined]),
                    );
                }
            }
            NetCommand::FcUnpublish {
                transaction_id,
                name,
            } => {
                let st = Status::new(StatusCode::UnpublishSuccess, format!("{name} unpublished"));
                self.send_cmd(0, &command::on_fc_unpublish(&st));
                self.send_cmd(
                    0,
                    &command::result(transaction_id, Value::Null, vec![Value::Undefined]),
                );
                let publishing = self.streams.iter().find_map(|(id, s)| match s {
                    StreamState::Publishing(n) if *n == name => Some(*id),
                    _ => None,
                });
                if let Some(id) = publishing {
                    self.stop_stream(id);
                }
            }
            NetCommand::Publish(p) => {
                let sid = msg_stream;
                match self.stream(sid) {
                    Some(StreamState::Created) => {
                        self.set_stream(sid, StreamState::PublishRequested(p.name.clone()));
                        self.events.push_back(ServerEvent::PublishRequest {
                            stream_id: sid,
                            name: p.name,
                            kind: p.kind,
                        });
                    }
                    other => {
                        let st = Status::new(
                            StatusCode::PublishBadName,
                            format!("publish on stream {sid} in state {other:?}"),
                        );
                        self.send_cmd(sid, &command::on_status(&st));
                    }
                }
            }
            NetCommand::Play(p) => {
                let sid = msg_stream;
                match self.stream(sid) {
                    Some(StreamState::Created) => {
                        self.set_stream(
                            sid,
                            StreamState::PlayRequested {
                                name: p.name.clone(),
                                reset: p.reset.unwrap_or(true),
                            },
                        );
                        self.events.push_back(ServerEvent::PlayRequest {
                            stream_id: sid,
                            play: p,
                        });
                    }
                    other => {
                        let st = Status::new(
                            StatusCode::PlayFailed,
                            format!("play on stream {sid} in state {other:?}"),
                        );
                        self.send_cmd(sid, &command::on_status(&st));
                    }
                }
            }
            NetCommand::CloseStream { .. } => self.stop_stream(msg_stream),
            NetCommand::DeleteStream { stream_id, .. } => {
                let sid = match stream_id {
                    Some(id) if (0.0..=f64::from(u32::MAX)).contains(&id) => id as u32,
                    Some(_) => return Ok(()),
                    None => msg_stream,
                };
                if self.stream(sid).is_some() {
                    self.stop_stream(sid);
                    self.streams.retain(|(i, _)| *i != sid);
                    self.events
                        .push_back(ServerEvent::StreamDeleted { stream_id: sid });
                }
            }
            NetCommand::CheckBw { .. } | NetCommand::Result { .. } | NetCommand::Error { .. } => {}
            _ => self.events.push_back(ServerEvent::Command {
                stream_id: msg_stream,
                command: cmd,
            }),
        }
        Ok(())
    }

    /// Back to `Created`, reporting the end of a publish or play.
    fn stop_stream(&mut self, sid: u32) {
        match self.stream(sid) {
            Some(StreamState::Publishing(_)) => {
                self.events
                    .push_back(ServerEvent::Unpublished { stream_id: sid });
            }
            Some(StreamState::Playing(_)) => {
                self.events
                    .push_back(ServerEvent::PlayStopped { stream_id: sid });
            }
            _ => {}
        }
        self.set_stream(sid, StreamState::Created);
    }
}
