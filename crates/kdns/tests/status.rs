//! The live status page on the metrics port: `/status.json` after real traffic (top names, the
//! NXDOMAIN names and the client sending them), and `/status` rendered by headless Chromium
//! (Debian's `chromium`, installed by the test command as root): the DOM shows the same data and
//! the screenshot is a real rendered page, not a blank one.

mod common;

use common::*;
use hickory_proto::rr::RecordType;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

fn send_from(src: &str, server: SocketAddr, name: &str, times: usize) {
    let sock = UdpSocket::bind((src, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let packet = query(name, RecordType::A).to_vec().unwrap();
    let mut buf = [0u8; 1500];
    for _ in 0..times {
        sock.send_to(&packet, server).unwrap();
        sock.recv(&mut buf).unwrap();
    }
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
}

#[test]
fn status_page_shows_traffic_top_names_and_nxdomain_clients() {
    let metrics_port = free_port();
    let cluster = std::fs::canonicalize(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/cluster")).unwrap();
    let corefile = format!(
        ".:PORT {{\n    bind 127.0.0.1\n    prometheus 127.0.0.1:{metrics_port}\n    cache 30\n    kubernetes cluster.local {{\n        manifests {}\n    }}\n}}\n",
        cluster.display()
    );
    let k = Kdns::start(&corefile);
    // Traffic: a popular cluster name from 127.0.0.1, an ndots-style NXDOMAIN storm from 127.0.0.7.
    send_from("127.0.0.1", k.addr(), "web.shop.svc.cluster.local.", 400);
    send_from("127.0.0.7", k.addr(), "api.example.com.shop.svc.cluster.local.", 240);
    let base = format!("127.0.0.1:{metrics_port}");
    let (code, json) = http_get(&base, "/status.json").expect("status.json");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert!(v["requests"].as_f64().unwrap() >= 640.0, "{json}");
    assert_eq!(v["top_names"][0][0], "web.shop.svc.cluster.local.", "{json}");
    let nx = &v["top_nxdomain"][0];
    assert_eq!(nx["name"], "api.example.com.shop.svc.cluster.local.", "{json}");
    assert_eq!(nx["clients"][0][0], "127.0.0.7", "{json}");
    let counted = nx["count"].as_u64().unwrap();
    assert!((160..=320).contains(&counted), "sampled estimate of 240: {counted}");
    assert!(v["cache"]["hits"].as_f64().unwrap() > 0.0 && v["latency"]["p99"].is_number(), "{json}");
    assert!(v["rcodes"]["NXDOMAIN"].as_f64().unwrap() >= 240.0);
    let (code, page) = http_get(&base, "/status").unwrap();
    assert_eq!(code, 200);
    assert!(
        page.contains("<title>kdns status</title>") && !page.contains("http://") && !page.contains("https://"),
        "no external assets"
    );

    let Some(browser) = chromium() else {
        assert!(
            std::env::var("KDNS_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "KDNS_REQUIRE_CHROMIUM=1 but no chromium"
        );
        eprintln!("status page: chromium not installed, browser part not run");
        return;
    };
    let dir = temp_dir("status");
    let shot = dir.join("status.png");
    let url = format!("http://{base}/status");
    let common_args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1280,900",
        "--virtual-time-budget=5000",
    ];
    let out = Command::new(browser)
        .args(common_args)
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("api.example.com.shop.svc.cluster.local."),
        "rendered DOM:\n{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains("127.0.0.7"), "the storm's client is named");
    assert!(dom.contains("web.shop.svc.cluster.local."));
    assert!(dom.contains("not a node cache"), "node-cache state shown");
    let status = Command::new(browser)
        .args(common_args)
        .arg(format!("--user-data-dir={}", dir.join("profile2").display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(shot.exists(), "no screenshot: {}", String::from_utf8_lossy(&status.stderr));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (1280, 900));
    let bpp = info.line_size / info.width as usize;
    let at = |x: usize, y: usize| {
        let i = y * info.line_size + x * bpp;
        (pixels[i], pixels[i + 1], pixels[i + 2])
    };
    // The header bar is the page's dark blue, the body its light grey, and the page has text.
    assert_eq!(at(640, 5), (0x1f, 0x3a, 0x5f), "header colour");
    assert_eq!(at(2, 890), (0xf4, 0xf6, 0xf8), "background colour");
    let colours: std::collections::HashSet<(u8, u8, u8)> = (0..info.height as usize)
        .step_by(3)
        .flat_map(|y| (0..info.width as usize).step_by(3).map(move |x| (x, y)))
        .map(|(x, y)| at(x, y))
        .collect();
    assert!(colours.len() > 50, "a rendered page, not a blank one ({} colours)", colours.len());
    eprintln!("status page: screenshot {} ({} colours)", shot.display(), colours.len());
}
