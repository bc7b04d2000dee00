//! Request building, answer decoding and the tables of the admin commands, without a server.

use super::*;

fn client(url: &str, token: Option<&str>) -> AdminClient {
    AdminClient::new(&Connection {
        url: url.to_owned(),
        token: token.map(str::to_owned),
    })
    .unwrap()
}

fn header(request: &Request, name: header::HeaderName) -> Option<&str> {
    request.headers().get(name).map(|value| value.to_str().unwrap())
}

fn json_body(request: &Request) -> Value {
    let bytes = request.body().and_then(|body| body.as_bytes()).unwrap();
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn upload_posts_the_component_bytes_with_the_token() {
    let client = client("http://127.0.0.1:8080", Some("secret"));
    let request = client
        .upload_request("quiet-hours", b"\0asm\x0d\0\x01\0".to_vec())
        .unwrap();
    assert_eq!(request.method(), Method::POST);
    assert_eq!(
        request.url().as_str(),
        "http://127.0.0.1:8080/v1/plugins/quiet-hours/versions"
    );
    assert_eq!(header(&request, header::CONTENT_TYPE), Some("application/wasm"));
    assert_eq!(header(&request, header::AUTHORIZATION), Some("Bearer secret"));
    assert_eq!(
        request.body().and_then(|body| body.as_bytes()),
        Some(&b"\0asm\x0d\0\x01\0"[..])
    );
}

#[test]
fn lifecycle_requests_have_the_documented_shapes() {
    let client = client("https://wasp.example.com/base/", None);
    let list = client.list_request().unwrap();
    assert_eq!(
        (list.method(), list.url().as_str()),
        (&Method::GET, "https://wasp.example.com/base/v1/plugins")
    );
    assert_eq!(header(&list, header::AUTHORIZATION), None, "no token, no header");

    let view = client.plugin_request("quiet-hours").unwrap();
    assert_eq!(view.url().path(), "/base/v1/plugins/quiet-hours");

    let activate = client.activate_request("quiet-hours", "ab12").unwrap();
    assert_eq!(activate.method(), Method::POST);
    assert_eq!(activate.url().path(), "/base/v1/plugins/quiet-hours/activate");
    assert_eq!(header(&activate, header::CONTENT_TYPE), Some("application/json"));
    assert_eq!(json_body(&activate), json!({"version": "ab12"}));

    let rollback = client.rollback_request("quiet-hours").unwrap();
    assert_eq!(rollback.method(), Method::POST);
    assert_eq!(rollback.url().path(), "/base/v1/plugins/quiet-hours/rollback");
    assert!(rollback.body().is_none());

    let shadow = client.shadow_request("quiet-hours", "cd34").unwrap();
    assert_eq!(shadow.method(), Method::POST);
    assert_eq!(shadow.url().path(), "/base/v1/plugins/quiet-hours/shadow");
    assert_eq!(json_body(&shadow), json!({"version": "cd34"}));

    let report = client.shadow_report_request("quiet-hours").unwrap();
    assert_eq!(
        (report.method(), report.url().path()),
        (&Method::GET, "/base/v1/plugins/quiet-hours/shadow")
    );
}

#[test]
fn a_name_is_one_path_segment_whatever_it_holds() {
    let client = client("http://localhost:8080", None);
    let request = client.plugin_request("../admin?x=1").unwrap();
    assert_eq!(request.url().path(), "/v1/plugins/..%2Fadmin%3Fx=1");
    assert_eq!(request.url().query(), None);
}

#[test]
fn urls_that_are_not_http_are_refused() {
    for url in ["not a url", "ftp://host", "mailto:a@b"] {
        let error = AdminClient::new(&Connection {
            url: url.to_owned(),
            token: None,
        })
        .err()
        .unwrap()
        .to_string();
        assert!(error.contains("WASP_URL"), "{url}: {error}");
    }
}

#[test]
fn error_answers_show_the_servers_message_plainly() {
    let body = br#"{"error": {"code": "world_mismatch", "message": "plugin quiet-hours: does not implement wasp:policy@0.1.0: it does not export `on-event`", "field": "body"}}"#;
    let error = decode::<UploadedView>(StatusCode::UNPROCESSABLE_ENTITY, body, "u").unwrap_err();
    assert!(matches!(&error, AdminError::Api { code, .. } if code == "world_mismatch"));
    assert_eq!(
        error.to_string(),
        "plugin quiet-hours: does not implement wasp:policy@0.1.0: it does not export `on-event` (field `body`)"
    );

    let unauthorized =
        br#"{"error": {"code": "unauthorized", "message": "missing or wrong bearer token", "field": null}}"#;
    let error = decode::<PluginList>(StatusCode::UNAUTHORIZED, unauthorized, "u").unwrap_err();
    assert_eq!(
        error.to_string(),
        "missing or wrong bearer token; set --token or WASP_ADMIN_TOKEN"
    );

    let error = decode::<PluginList>(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>", "u").unwrap_err();
    assert!(matches!(error, AdminError::Status { .. }));
    assert_eq!(
        error.to_string(),
        "the server answered 502 Bad Gateway: <html>bad gateway</html>"
    );
}

#[test]
fn answers_with_extra_or_missing_fields_are_read() {
    let body = br#"{"plugins": [{"name": "button-limit", "live_version": "0123456789abcdef", "shadow_version": null,
        "position": 0, "hooks": ["on-submit"], "failure": "closed", "limits": {"fuel_per_call": 1},
        "config": {}, "quarantined": false, "versions": [], "stats": {"calls": 3, "faults": 0, "p50_us": 12,
        "p99_us": 40, "consecutive_faults": 0}, "shadow_stats": null, "something_new": true}]}"#;
    let list: PluginList = decode(StatusCode::OK, body, "u").unwrap();
    assert_eq!(list.plugins[0].stats.unwrap().p99_us, 40);
    let sparse: PluginView = decode(StatusCode::OK, br#"{"name": "x", "stats": null}"#, "u").unwrap();
    assert!(sparse.stats.is_none() && sparse.versions.is_empty());
    let nothing: Value = decode(StatusCode::NO_CONTENT, b"", "u").unwrap();
    assert_eq!(nothing, Value::Null);
    let error = decode::<PluginList>(StatusCode::OK, b"[1, 2]", "http://h/v1/plugins").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("unexpected answer from http://h/v1/plugins"),
        "{error}"
    );
}

fn view(name: &str, live: Option<&str>, quarantined: bool) -> PluginView {
    PluginView {
        name: name.to_owned(),
        live_version: live.map(str::to_owned),
        position: Some(0),
        hooks: vec!["on-submit".into(), "on-dispatch".into()],
        failure: Some("closed".into()),
        quarantined,
        stats: Some(StatsView {
            calls: 12_345,
            faults: 2,
            p50_us: 8,
            p99_us: 1_250,
        }),
        ..PluginView::default()
    }
}

#[test]
fn ls_prints_one_row_per_plugin() {
    let list = PluginList {
        plugins: vec![
            view("button-limit", Some("0123456789abcdef0123"), false),
            PluginView {
                position: Some(1),
                stats: None,
                ..view("quiet-hours", None, false)
            },
            view("flaky", Some("fedcba9876543210"), true),
        ],
    };
    assert_eq!(
        render_list(&list),
        "POS  NAME          STATE        LIVE          SHADOW  HOOKS                  FAILURE  CALLS   FAULTS  P50  P99\n\
         0    button-limit  live         0123456789ab  -       on-submit,on-dispatch  closed   12,345  2       8µs  1,250µs\n\
         1    quiet-hours   uploaded     -             -       on-submit,on-dispatch  closed   0       0       0µs  0µs\n\
         0    flaky         quarantined  fedcba987654  -       on-submit,on-dispatch  closed   12,345  2       8µs  1,250µs\n"
    );
    assert_eq!(
        render_list(&PluginList::default()),
        "no plugins; upload one with `wasp plugin push`\n"
    );
}

#[test]
fn ls_name_shows_settings_and_versions() {
    let mut plugin = view("button-limit", Some("0123456789abcdef"), false);
    plugin.shadow_version = Some("fedcba9876543210".into());
    plugin.config = json!({"max_buttons": 3});
    plugin.versions = vec![
        VersionView {
            version: "0123456789abcdef".into(),
            size_bytes: Some(98_304),
            uploaded_at: json!("2026-03-01T10:00:00Z"),
        },
        VersionView {
            version: "fedcba9876543210".into(),
            size_bytes: None,
            uploaded_at: Value::Null,
        },
    ];
    let text = render_plugin(&plugin);
    assert!(text.contains("live         0123456789abcdef\n"), "{text}");
    assert!(text.contains("config       {\"max_buttons\":3}\n"), "{text}");
    assert!(text.contains("limits       -\n"), "{text}");
    assert!(
        text.contains("stats        12,345 calls, 2 faults, p50 8µs, p99 1,250µs\n"),
        "{text}"
    );
    assert!(text.contains("VERSION       SIZE          UPLOADED\n"), "{text}");
    assert!(
        text.contains("0123456789ab  98,304 bytes  2026-03-01T10:00:00Z  live\n"),
        "{text}"
    );
    assert!(
        text.contains("fedcba987654  -             -                     shadow\n"),
        "{text}"
    );
}

#[test]
fn the_shadow_report_lists_disagreements() {
    let report = ShadowReport {
        version: "fedcba9876543210".into(),
        live_version: Some("0123456789abcdef".into()),
        compared: 1_000,
        agreed: 987,
        agreement: Some(0.987),
        disagreements: vec![json!({"message_id": "m-1", "hook": "on-submit", "live": "allow",
            "shadow": "reject: too many buttons", "at": "2026-03-01T10:00:00Z", "extra": 1})],
    };
    assert_eq!(
        render_shadow("button-limit", &report),
        "button-limit: shadow fedcba987654 beside live 0123456789ab\n\
         agreed on 987 of 1,000 compared (98.7%)\n\
         \n\
         disagreements:\n\
         MESSAGE  HOOK       LIVE   SHADOW                    AT\n\
         m-1      on-submit  allow  reject: too many buttons  2026-03-01T10:00:00Z\n"
    );
    let empty = ShadowReport {
        version: "fedcba9876543210".into(),
        ..ShadowReport::default()
    };
    assert!(render_shadow("button-limit", &empty).contains("agreed on 0 of 0 compared (-)"));
}

#[test]
fn the_upload_answer_says_what_to_do_next() {
    let text = render_uploaded(&UploadedView {
        name: "quiet-hours".into(),
        version: "0123456789abcdef".into(),
        size_bytes: 51_200,
        hooks: vec!["on-submit".into(), "on-dispatch".into(), "on-event".into()],
    });
    assert!(
        text.starts_with("uploaded quiet-hours version 0123456789abcdef\nsize     51,200 bytes\n"),
        "{text}"
    );
    assert!(text.contains("wasp plugin shadow quiet-hours 0123456789ab"), "{text}");
    assert!(
        text.contains("      wasp plugin activate quiet-hours 0123456789ab"),
        "{text}"
    );
}

#[test]
fn package_names_are_read_from_the_manifest() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(
        directory.path().join("Cargo.toml"),
        "[package]\nname = \"quiet-hours\"\n",
    )
    .unwrap();
    assert_eq!(package_name(directory.path()).unwrap().as_deref(), Some("quiet-hours"));
    std::fs::write(directory.path().join("Cargo.toml"), "[workspace]\n").unwrap();
    assert_eq!(package_name(directory.path()).unwrap(), None);
}

#[test]
fn a_cause_chain_reads_as_one_line() {
    let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
    let error = anyhow::Error::new(refused)
        .context("tcp connect error")
        .context("error sending request");
    assert_eq!(
        causes(error.as_ref()),
        "error sending request: tcp connect error: Connection refused"
    );
    let repeated = anyhow::Error::new(std::io::Error::other("timed out")).context("operation timed out");
    assert_eq!(causes(repeated.as_ref()), "operation timed out");
}
