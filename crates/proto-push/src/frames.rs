//! The delivery channel's frames: what a connected device sends (acknowledgements, idle and
//! active reports, pings, as JSON text frames on the WebSocket or posted beside the event
//! stream), what it receives for a message, and the Instance ID batch body.
//!
//! Device frames are read by [`DeviceFrame::parse`] and nothing else, so that the WebSocket and
//! the posted-frame endpoint accept exactly the same bytes.

use serde_json::{Map, Value};

/// Ids one Instance ID batch (`/iid/v1:batchAdd`, `/iid/v1:batchRemove`) may name.
pub const MAX_BATCH_IDS: usize = 1000;

/// A frame a device sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceFrame {
    /// `{"type":"ack","message_id":"…"}`; beside an event stream the frame also names its
    /// `registration_id`, as the connection does not.
    Ack { message_id: String, registration_id: Option<String> },
    /// `{"type":"idle"}`: hold `delay_while_idle` messages.
    Idle,
    /// `{"type":"active"}`: send what was held.
    Active,
    /// `{"type":"ping"}`: answered by [`PONG`].
    Ping,
}

/// The answer to a device's ping.
pub const PONG: &str = r#"{"type":"pong"}"#;

impl DeviceFrame {
    /// Reads one device frame: a JSON object of at most `max_bytes` bytes whose `type` is `ack`,
    /// `idle`, `active` or `ping`, an acknowledgement carrying a string `message_id` (and, if
    /// present, a string `registration_id`). Anything else is `None`, a malformed frame.
    pub fn parse(text: &str, max_bytes: usize) -> Option<DeviceFrame> {
        if text.len() > max_bytes {
            return None;
        }
        let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(text) else {
            return None;
        };
        let field = |name: &str| frame.get(name).and_then(Value::as_str);
        match field("type")? {
            "ack" => {
                let message_id = field("message_id")?.to_owned();
                let registration_id = match frame.get("registration_id") {
                    None => None,
                    Some(it) => Some(it.as_str()?.to_owned()),
                };
                Some(DeviceFrame::Ack { message_id, registration_id })
            }
            "idle" => Some(DeviceFrame::Idle),
            "active" => Some(DeviceFrame::Active),
            "ping" => Some(DeviceFrame::Ping),
            _ => None,
        }
    }
}

/// The frame a device receives for a message: the stored payload's fields (`from`,
/// `collapse_key`, `data`, `notification`; or `message_type` and `total_deleted`) with `type`,
/// `message_id` and `registration_id`, as one JSON object with its keys sorted. A payload that is
/// not a JSON object contributes nothing.
pub fn message_frame(registration_id: &str, message_id: &str, payload: &str) -> String {
    let mut object = match serde_json::from_str::<Value>(payload) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    };
    object.insert("type".to_owned(), "message".into());
    object.insert("message_id".to_owned(), message_id.into());
    object.insert("registration_id".to_owned(), registration_id.into());
    Value::Object(object).to_string()
}

/// The `message_id` of a frame built by [`message_frame`] (the event stream's event id); `None`
/// for anything else.
pub fn frame_message_id(frame: &str) -> Option<String> {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(frame) else { return None };
    object.get("message_id").and_then(Value::as_str).map(str::to_owned)
}

/// An Instance ID batch body, `{"to":"/topics/<name>","registration_tokens":["…",…]}`: the topic
/// name (not yet checked against [`crate::valid_topic`]) and 1 to [`MAX_BATCH_IDS`] ids, all
/// strings. Anything else is `None`, the API's `INVALID_ARGUMENT`.
pub fn parse_iid_batch(body: &[u8]) -> Option<(String, Vec<String>)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let topic = value.get("to")?.as_str()?.strip_prefix("/topics/")?.to_owned();
    let ids = value.get("registration_tokens")?.as_array()?;
    if ids.is_empty() || ids.len() > MAX_BATCH_IDS {
        return None;
    }
    let ids = ids.iter().map(|it| it.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>()?;
    Some((topic, ids))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn device_frames_are_read_strictly() {
        let ack = DeviceFrame::parse(r#"{"type":"ack","message_id":"m1"}"#, 4096);
        assert_eq!(ack, Some(DeviceFrame::Ack { message_id: "m1".into(), registration_id: None }));
        let posted =
            DeviceFrame::parse(r#"{"type":"ack","message_id":"m1","registration_id":"r"}"#, 4096);
        assert_eq!(
            posted,
            Some(DeviceFrame::Ack { message_id: "m1".into(), registration_id: Some("r".into()) })
        );
        assert_eq!(DeviceFrame::parse(r#"{"type":"idle"}"#, 4096), Some(DeviceFrame::Idle));
        assert_eq!(DeviceFrame::parse(r#"{"type":"active"}"#, 4096), Some(DeviceFrame::Active));
        assert_eq!(DeviceFrame::parse(r#"{"type":"ping"}"#, 4096), Some(DeviceFrame::Ping));
        for bad in [
            "",
            "null",
            "[]",
            r#""ack""#,
            r#"{"type":"ack"}"#,
            r#"{"type":"ack","message_id":7}"#,
            r#"{"type":"ack","message_id":"m","registration_id":null}"#,
            r#"{"type":"pong"}"#,
            r#"{"type":["ping"]}"#,
            r#"{"type":"ping""#,
        ] {
            assert_eq!(DeviceFrame::parse(bad, 4096), None, "{bad}");
        }
        assert_eq!(DeviceFrame::parse(r#"{"type":"ping"}"#, 10), None, "over the size limit");
    }

    #[test]
    fn a_message_frame_carries_its_ids_over_the_payload() {
        let frame = message_frame("reg", "m1", r#"{"data":{"k":"v"},"type":"x","message_id":"y"}"#);
        assert_eq!(
            frame,
            r#"{"data":{"k":"v"},"message_id":"m1","registration_id":"reg","type":"message"}"#
        );
        assert_eq!(frame_message_id(&frame).as_deref(), Some("m1"));
        assert_eq!(
            message_frame("reg", "m2", "not json"),
            r#"{"message_id":"m2","registration_id":"reg","type":"message"}"#
        );
        assert_eq!(frame_message_id("[1]"), None);
    }

    #[test]
    fn batches_name_a_topic_and_one_to_a_thousand_ids() {
        let body = br#"{"to":"/topics/news","registration_tokens":["a","b"]}"#;
        assert_eq!(parse_iid_batch(body), Some(("news".into(), vec!["a".into(), "b".into()])));
        let ids: Vec<String> = (0..=MAX_BATCH_IDS).map(|it| format!("\"{it}\"")).collect();
        let too_many = format!(r#"{{"to":"/topics/t","registration_tokens":[{}]}}"#, ids.join(","));
        assert_eq!(parse_iid_batch(too_many.as_bytes()), None);
        for bad in [
            &br#"{"to":"/topics/t","registration_tokens":[]}"#[..],
            br#"{"to":"news","registration_tokens":["a"]}"#,
            br#"{"to":"/topics/t","registration_tokens":["a",1]}"#,
            br#"{"registration_tokens":["a"]}"#,
            b"\xff",
        ] {
            assert_eq!(parse_iid_batch(bad), None);
        }
    }

    proptest! {
        /// Every string is a frame or malformed, never a panic; a frame over the limit is
        /// malformed whatever it says.
        #[test]
        fn any_text_is_a_frame_or_malformed(text in ".{0,200}", limit in 0usize..300) {
            let parsed = DeviceFrame::parse(&text, limit);
            if text.len() > limit {
                prop_assert_eq!(parsed, None);
            }
        }

        /// An acknowledgement round-trips whatever its ids hold.
        #[test]
        fn acknowledgements_round_trip(message_id in ".{0,64}", registration_id in proptest::option::of(".{0,64}")) {
            let mut frame = serde_json::json!({ "type": "ack", "message_id": message_id });
            if let Some(it) = &registration_id {
                frame["registration_id"] = it.clone().into();
            }
            let parsed = DeviceFrame::parse(&frame.to_string(), usize::MAX);
            prop_assert_eq!(parsed, Some(DeviceFrame::Ack { message_id, registration_id }));
        }

        /// A message frame is JSON whose ids are the ones given, whatever the payload holds.
        #[test]
        fn message_frames_keep_their_ids(reg in ".{0,40}", id in ".{0,40}", payload in ".{0,200}") {
            let frame = message_frame(&reg, &id, &payload);
            prop_assert_eq!(frame_message_id(&frame), Some(id));
            let value: Value = serde_json::from_str(&frame).expect("json");
            prop_assert_eq!(value["registration_id"].as_str(), Some(reg.as_str()));
            prop_assert_eq!(value["type"].as_str(), Some("message"));
        }

        /// Any bytes are a batch or `INVALID_ARGUMENT`; a batch has 1..=1000 ids.
        #[test]
        fn any_bytes_are_a_batch_or_refused(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Some((_, ids)) = parse_iid_batch(&body) {
                prop_assert!(!ids.is_empty() && ids.len() <= MAX_BATCH_IDS);
            }
        }
    }
}
