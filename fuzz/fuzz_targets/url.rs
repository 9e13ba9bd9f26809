//! RTMP URL parsing of arbitrary text. What parses must print (Display) to a URL that parses
//! back to the same value, and its tcUrl must parse as a URL of the same scheme and host.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rsrtmp_engine::url::RtmpUrl;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let url = match RtmpUrl::parse(text) {
        Ok(u) => u,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = (url.port_or_default(), url.option("app"), format!("{url:?}"));
    let printed = url.to_string();
    match RtmpUrl::parse(&printed) {
        Ok(back) => assert_eq!(url, back, "Display did not round trip: {printed:?}"),
        Err(e) => panic!("Display output {printed:?} does not parse: {e}"),
    }
    let tc = url.tc_url();
    if let Ok(tc_url) = RtmpUrl::parse(&tc) {
        assert_eq!(tc_url.scheme, url.scheme);
    }
});
