//! The push bodies byte for byte, as snapshots. `check` shows each line with its ending escaped
//! (`\n`), so a stray space or a missing final newline shows in the snapshot. After an intended
//! change, `UPDATE_EXPECT=1 cargo test -p tessera-proto-push` rewrites them.

use expect_test::{Expect, expect};

use super::*;

fn check(body: &str, expect: Expect) {
    let shown: Vec<String> =
        body.split_inclusive('\n').map(|line| line.escape_debug().to_string()).collect();
    expect.assert_eq(&shown.join("\n"));
}

#[test]
fn c2dm_answers_one_line() {
    let accepted = Outcome::Accepted { message_id: "0:17%ab12".to_owned(), canonical: None };
    check(&c2dm_body(&accepted), expect![[r#"id=0:17%ab12\n"#]]);
    check(
        &c2dm_body(&Outcome::Failed(SendError::MismatchSenderId)),
        expect![[r#"Error=MismatchSenderId\n"#]],
    );
}

#[test]
fn gcm_text_adds_the_canonical_id_after_the_message_id() {
    let accepted =
        Outcome::Accepted { message_id: "0:18%ab12".to_owned(), canonical: Some("APA91bX".into()) };
    check(
        &gcm_text_body(&accepted),
        expect![[r#"
        id=0:18%ab12\n
        registration_id=APA91bX\n"#]],
    );
    check(
        &gcm_text_body(&Outcome::Failed(SendError::NotRegistered)),
        expect![[r#"Error=NotRegistered\n"#]],
    );
}

#[test]
fn gcm_json_counts_then_results_in_order() {
    let outcomes = [
        Outcome::Accepted { message_id: "0:1%a".to_owned(), canonical: None },
        Outcome::Failed(SendError::InvalidRegistration),
        Outcome::Accepted { message_id: "0:2%a".to_owned(), canonical: Some("APA91bC".into()) },
    ];
    check(
        &gcm_json_body(6782339717028231855, &outcomes),
        expect![[
            r#"{\"multicast_id\":6782339717028231855,\"success\":2,\"failure\":1,\"canonical_ids\":1,\"results\":[{\"message_id\":\"0:1%a\"},{\"error\":\"InvalidRegistration\"},{\"message_id\":\"0:2%a\",\"registration_id\":\"APA91bC\"}]}"#
        ]],
    );
    check(&gcm_topic_body(&Ok(42)), expect![[r#"{\"message_id\":42}"#]]);
    check(
        &gcm_topic_body(&Err(SendError::TopicsMessageRateExceeded)),
        expect![[r#"{\"error\":\"TopicsMessageRateExceeded\"}"#]],
    );
}

#[test]
fn bad_requests_explain_in_one_line() {
    check(
        &BadRequest::TooManyRecipients(1001).body(),
        expect![[r#"Number of messages on bulk (1001) exceeds maximum allowed (1000)\n"#]],
    );
    check(
        &BadRequest::FieldType("time_to_live", "number").body(),
        expect![[r#"Field \"time_to_live\" must be a JSON number\n"#]],
    );
    check(
        &BadRequest::MissingRecipients.body(),
        expect![[r#"Missing \"registration_ids\" or \"to\" field\n"#]],
    );
}

#[test]
fn registration_bodies() {
    check(
        &register_body("APA91bHPRgkF5JUvh7LQ3LR1qVJc8pZQ"),
        expect![[r#"token=APA91bHPRgkF5JUvh7LQ3LR1qVJc8pZQ\n"#]],
    );
    check(&unregister_body("com.example.notes"), expect![[r#"deleted=com.example.notes\n"#]]);
    check(
        &register_error_body(RegisterError::InvalidSender),
        expect![[r#"Error=INVALID_SENDER\n"#]],
    );
}

#[test]
fn unauthorized_page() {
    check(
        UNAUTHORIZED_BODY,
        expect![[r##"
        <HTML>\n
        <HEAD>\n
        <TITLE>Unauthorized</TITLE>\n
        </HEAD>\n
        <BODY BGCOLOR=\"#FFFFFF\" TEXT=\"#000000\">\n
        <H1>Unauthorized</H1>\n
        <H2>Error 401</H2>\n
        </BODY>\n
        </HTML>\n"##]],
    );
}
