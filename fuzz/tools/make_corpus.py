#!/usr/bin/env python3
"""Builds the seed corpora in fuzz/corpus/<target>/ from recorded sessions.

Captures come from tools/record_proxy.py sitting between a real client (ffmpeg, rtmpdump,
GStreamer rtmp2) and nginx-rtmp on loopback; see fuzz/README.md. Each capture is cut to a
few KB (handshake + connect + publish/play + a few media messages). The AMF seeds are the
command and data message bodies found in those captures (chunk streams parsed here), the FLV
seed is a 1-second 64x64 ffmpeg file, the tunnel seeds are librtmp-style RTMPT requests.

Usage: make_corpus.py CAPTURE_DIR SMALL_FLV
"""
import os
import struct
import sys

HS = 1 + 2 * 1536
CUT = 6000
HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")

# capture name -> what it is
CAPTURES = {
    "s1": "ffmpeg-publish",
    "s2": "ffmpeg-play",
    "s4": "rtmpdump-play",
    "s6": "rtmp2src-play-nostream",
    "s7": "rtmp2sink-publish",
    "s8": "rtmp2src-play",
}


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def messages(stream):
    """(type, payload) of each complete message of a chunk stream (after the handshake)."""
    out, streams, chunk_size, pos = [], {}, 128, 0
    try:
        while pos < len(stream):
            b0 = stream[pos]
            fmt, csid = b0 >> 6, b0 & 0x3F
            pos += 1
            if csid == 0:
                csid = 64 + stream[pos]
                pos += 1
            elif csid == 1:
                csid = 64 + stream[pos] + 256 * stream[pos + 1]
                pos += 2
            st = streams.setdefault(csid, {"len": 0, "type": 0, "buf": b"", "ts": 0})
            if fmt <= 2:
                ts = int.from_bytes(stream[pos:pos + 3], "big")
                pos += 3
            if fmt <= 1:
                st["len"] = int.from_bytes(stream[pos:pos + 3], "big")
                st["type"] = stream[pos + 3]
                pos += 4
            if fmt == 0:
                pos += 4
            if fmt <= 2 and ts == 0xFFFFFF:
                pos += 4
            need = min(chunk_size, st["len"] - len(st["buf"]))
            if pos + need > len(stream):
                break
            st["buf"] += stream[pos:pos + need]
            pos += need
            if len(st["buf"]) == st["len"]:
                out.append((st["type"], st["buf"]))
                if st["type"] == 1:
                    chunk_size = struct.unpack(">I", st["buf"][:4])[0] & 0x7FFFFFFF
                st["buf"] = b""
    except IndexError:
        pass
    return out


def main():
    cap_dir, flv = sys.argv[1], sys.argv[2]
    amf_seen = set()
    for key, label in CAPTURES.items():
        c2s = open(os.path.join(cap_dir, key + ".c2s"), "rb").read()
        s2c = open(os.path.join(cap_dir, key + ".s2c"), "rb").read()
        # Whole sessions, raw (mode 0), whole and split.
        put("server_session", f"{label}-raw", b"\x00\x00" + c2s[:CUT])
        put("server_session", f"{label}-raw-split", b"\x00\x07" + c2s[:CUT])
        put("client_session", f"{label}-raw", b"\x00\x00" + s2c[:CUT])
        # After a valid handshake by the harness: plain (1), RTMPE 9 (3).
        put("server_session", f"{label}-plain", b"\x01\x00" + c2s[HS:HS + CUT])
        play = "play" in label
        role = 0x10 if play else 0x00
        put("client_session", f"{label}-plain", bytes([0x01 | role, 0]) + s2c[HS:HS + CUT])
        # Chunk streams both ways.
        put("chunk_reader", f"{label}-c2s", b"\x00\x00\x00" + c2s[HS:HS + CUT])
        put("chunk_reader", f"{label}-s2c", b"\x05\x00\x00" + s2c[HS:HS + CUT])
        # Real hellos and answers.
        put("handshake_server", f"{label}-c012", b"\x00\x00" + c2s[:HS])
        put("handshake_client", f"{label}-s012", b"\x00\x03" + s2c[:HS])
        for stream in (c2s[HS:], s2c[HS:]):
            for type_id, payload in messages(stream):
                if type_id in (18, 20) and payload not in amf_seen and len(amf_seen) < 40:
                    amf_seen.add(payload)
                    n = len(amf_seen)
                    put("amf0", f"{label}-{n}", b"\x3f" + payload)
                    put("amf0_roundtrip", f"{label}-{n}", payload)
    hello = open(os.path.join(cap_dir, "s5.c2s"), "rb").read()
    put("handshake_server", "rtmpdump-rtmpe-c01", b"\x00\x00" + hello[:1 + 1536])

    media = open(flv, "rb").read()
    put("flv_parser", "ffmpeg-64x64-1s", b"\x00\x01" + media)
    put("flv_parser", "ffmpeg-64x64-1s-split", b"\x09\x00" + media[:4000])
    put("flv_parser", "ffmpeg-headerless", b"\x03\x00" + media[13:3000])

    urls = [
        "rtmp://127.0.0.1/live/s",
        "rtmps://user:p%40ss@example.com:443/app/inst/stream?token=1",
        "rtmpe://[::1]:1936/live/s live=1 conn=S:x",
        "rtmpt://host/live",
        "rtmpte://host:80/a/b/ app=x playpath=mp4:y/z.mp4",
        "rtmpts://host/app?auth=1/stream?k=v swfUrl=http://a/b.swf",
    ]
    for i, u in enumerate(urls):
        put("url", f"url-{i}", u.encode())

    # AMF3: hand-made values (no AMF3 on the wire in the captures above).
    amf3 = {
        "int-string": b"\x04\x7f\x06\x07abc",
        "object-traits": b"\x0a\x23\x01\x03a\x03b\x04\x01\x06\x03x",
        "dynamic": b"\x0a\x0b\x01\x03k\x06\x03v\x01",
        "array-refs": b"\x09\x05\x01\x06\x03s\x06\x00",
        "bytearray-date": b"\x0c\x07abc\x08\x01\x42\x70\x00\x00\x00\x00\x00\x00",
        "vector-dict": b"\x0d\x05\x00\x00\x00\x00\x01\x00\x00\x00\x02\x11\x03\x00\x04\x01\x04\x02",
        "xml": b"\x0b\x07<a/>\x07\x07<b/>",
    }
    for name, v in amf3.items():
        put("amf3", name, b"\x00" + v)
    put("amf0", "amf3-switch", b"\x3f\x00\x02\x00\x04call\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\x11\x06\x03x")

    # RTMPT as librtmp sends it; @ID@ becomes the id from the /open answer.
    def post(path, body):
        return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:1935\r\nAccept: */*\r\n"
                f"User-Agent: Shockwave Flash\r\nConnection: Keep-Alive\r\n"
                f"Cache-Control: no-cache\r\nContent-type: application/x-fcs\r\n"
                f"Content-length: {len(body)}\r\n\r\n").encode() + body
    c2s = open(os.path.join(cap_dir, "s4.c2s"), "rb").read()
    seq = (post("/fcs/ident2", b"\x00") + post("/open/1", b"\x00")
           + post("/send/@ID@/1", c2s[:1537]) + post("/idle/@ID@/2", b"\x00")
           + post("/send/@ID@/3", c2s[1537:HS + 400]) + post("/close/@ID@/4", b"\x00"))
    put("tunnel_server", "librtmp-session", seq)
    put("tunnel_server", "open-only", post("/open/1", b"\x00"))
    put("tunnel_server", "get", b"GET /open/1 HTTP/1.1\r\nHost: x\r\n\r\n")
    put("tunnel_server", "chunked",
        b"POST /open/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n\x00\r\n0\r\n\r\n"
        + post("/send/@ID@/1", b"\x03" * 10))
    put("tunnel_server", "too-large", b"POST /send/x/1 HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n")


if __name__ == "__main__":
    main()
