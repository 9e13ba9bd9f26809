//! The client elements without a network peer: registration, ranks, properties with rtmp2's
//! names and defaults, the location and URI handler, the stats structure, and settings errors.

mod common;

use gst::prelude::*;

fn make(name: &str) -> gst::Element {
    common::init_gst();
    gst::ElementFactory::make(name).build().unwrap()
}

#[test]
fn both_elements_outrank_rtmp2_for_rtmp_uris() {
    common::init_gst();
    for (name, kind, rtmp2) in [
        ("rtmpclientsrc", gst::URIType::Src, "rtmp2src"),
        ("rtmpclientsink", gst::URIType::Sink, "rtmp2sink"),
    ] {
        let ours = gst::ElementFactory::find(name).unwrap();
        assert_eq!(ours.rank(), gst::Rank::PRIMARY + 2);
        if let Some(theirs) = gst::ElementFactory::find(rtmp2) {
            assert!(ours.rank() > theirs.rank());
        }
        let picked = gst::Element::make_from_uri(kind, "rtmp://127.0.0.1/live/s", None).unwrap();
        assert_eq!(picked.factory().unwrap().name(), name);
    }
}

#[test]
fn location_sets_the_parts_and_reads_back_without_credentials() {
    for name in ["rtmpclientsrc", "rtmpclientsink"] {
        let e = make(name);
        assert_eq!(
            e.property::<String>("location"),
            "rtmp://localhost/live/myStream"
        );
        e.set_property(
            "location",
            "rtmp://bob:s3cret@example.com:1936/app/inst/key?t=1",
        );
        assert_eq!(e.property::<String>("host"), "example.com");
        assert_eq!(e.property::<i32>("port"), 1936);
        assert_eq!(e.property::<String>("application"), "app/inst");
        assert_eq!(e.property::<String>("stream"), "key?t=1");
        assert_eq!(
            e.property::<Option<String>>("username").as_deref(),
            Some("bob")
        );
        assert_eq!(
            e.property::<Option<String>>("password").as_deref(),
            Some("s3cret")
        );
        let location = e.property::<String>("location");
        assert_eq!(location, "rtmp://example.com:1936/app/inst/key?t=1");
        // The parts change the location.
        e.set_property("stream", "other");
        e.set_property("port", 1935i32);
        assert_eq!(
            e.property::<String>("location"),
            "rtmp://example.com/app/inst/other"
        );
        // A location without user info clears the credentials, as in rtmp2.
        e.set_property("location", "rtmp://h/live/s");
        assert_eq!(e.property::<Option<String>>("username"), None);
        assert_eq!(e.property::<Option<String>>("password"), None);
        // The URI handler agrees with the property.
        let handler = e.dynamic_cast_ref::<gst::URIHandler>().unwrap();
        assert_eq!(handler.uri().as_deref(), Some("rtmp://h/live/s"));
        handler.set_uri("rtmp://10.1.2.3/x/y").unwrap();
        assert_eq!(e.property::<String>("host"), "10.1.2.3");
        let err = handler.set_uri("rtmp:///nohost").unwrap_err();
        assert!(err.message().contains("rtmp:///nohost"), "{err}");
        assert_eq!(
            handler.protocols(),
            vec!["rtmp", "rtmps", "rtmpt", "rtmpts", "rtmpe", "rtmpte"]
        );
        // Each scheme's default port, when the URI gives none.
        for (scheme, port) in [
            ("rtmp", 1935),
            ("rtmps", 443),
            ("rtmpt", 80),
            ("rtmpts", 443),
            ("rtmpe", 1935),
            ("rtmpte", 80),
        ] {
            handler.set_uri(&format!("{scheme}://h/live/s")).unwrap();
            assert_eq!(e.property::<i32>("port"), port, "{scheme}");
            let value = e.property_value("scheme");
            let (_, v) = gst::glib::EnumValue::from_value(&value).unwrap();
            assert_eq!(v.nick(), scheme);
            assert_eq!(
                handler.uri().as_deref(),
                Some(&*format!("{scheme}://h/live/s"))
            );
        }
    }
}

#[test]
fn properties_have_rtmp2_names_and_documented_defaults() {
    let src = make("rtmpclientsrc");
    let sink = make("rtmpclientsink");
    for e in [&src, &sink] {
        assert_eq!(e.property::<String>("host"), "localhost");
        assert_eq!(e.property::<i32>("port"), 1935);
        assert_eq!(e.property::<String>("application"), "live");
        assert_eq!(e.property::<String>("stream"), "myStream");
        assert_eq!(e.property::<u32>("timeout"), 5);
        assert!(e.property::<bool>("async-connect"));
        assert!(e.property::<bool>("reconnect"));
        assert_eq!(e.property::<Option<String>>("flash-version"), None);
        assert_eq!(e.property::<Option<String>>("extra-connect-args"), None);
        assert_eq!(e.property::<Option<String>>("tls-ca-file"), None);
        // rtmp2's default: validate-all.
        let flags = e.property_value("tls-validation-flags");
        let (_, set) = gst::glib::FlagsValue::from_value(&flags).unwrap();
        let bits = set.iter().fold(0, |acc, f| acc | f.value());
        assert_eq!(bits, 0x7f, "tls-validation-flags default");
        let authmod = e.property_value("authmod");
        let (_, v) = gst::glib::EnumValue::from_value(&authmod).unwrap();
        assert_eq!(v.nick(), "auto");
        for pspec in e.list_properties() {
            assert!(
                !pspec.blurb().unwrap_or_default().is_empty(),
                "{} undocumented",
                pspec.name()
            );
        }
    }
    assert_eq!(sink.property::<u32>("chunk-size"), 4096);
    assert_eq!(sink.property::<u32>("max-hold-time"), 10_000);
    let stop = sink.property_value("stop-commands");
    let flags = gst::glib::FlagsValue::from_value(&stop).unwrap().1;
    let nicks: Vec<&str> = flags.iter().map(|f| f.nick()).collect();
    assert_eq!(nicks, vec!["fcunpublish", "deletestream"]);
    assert_eq!(src.property::<u32>("idle-timeout"), 0);
    assert!(!src.property::<bool>("no-eof-is-error"));
    // Authmod takes rtmp2's nicks.
    sink.set_property_from_str("authmod", "llnw");
    sink.set_property_from_str("stop-commands", "fcunpublish+closestream+deletestream");
}

#[test]
fn stats_has_rtmp2_fields_and_ours_all_zero_before_connecting() {
    for name in ["rtmpclientsrc", "rtmpclientsink"] {
        let e = make(name);
        let stats = e.property::<gst::Structure>("stats");
        assert_eq!(stats.name(), "GstRtmpConnectionStats");
        for field in [
            "in-chunk-size",
            "out-chunk-size",
            "in-window-ack-size",
            "out-window-ack-size",
            "in-bytes-total",
            "out-bytes-total",
            "in-bytes-acked",
            "out-bytes-acked",
            "bitrate",
            "frames",
            "drops",
            "reconnects",
            "held",
            "resent",
        ] {
            assert_eq!(common::stat(&stats, field), 0, "{name} {field}");
        }
    }
}

#[test]
fn bad_settings_fail_start_with_the_value_named() {
    common::init_gst();
    for (setting, value, expected) in [
        ("tls-ca-file", "/no/such/ca.pem", "/no/such/ca.pem"),
        ("stream", "", "stream is empty"),
        ("extra-connect-args", "conn=O:1", "conn=O:1"),
    ] {
        let p = common::pipeline("rtmpclientsrc name=src ! fakesink");
        let src = p.by_name("src").unwrap();
        // The CA file matters only for the TLS schemes.
        src.set_property_from_str("scheme", "rtmps");
        src.set_property_from_str(setting, value);
        let (error, _) = common::run(&p, std::time::Duration::from_secs(10)).expect_error();
        assert!(
            error.matches(gst::ResourceError::Settings),
            "{setting}: {error}"
        );
        assert!(error.message().contains(expected), "{setting}: {error}");
    }
}
