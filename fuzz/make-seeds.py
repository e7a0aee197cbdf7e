#!/usr/bin/env python3
"""Seeds for the fuzz targets from real packets: queries as clients send them (sent to a running
kdns on the example Corefile) and the replies kdns produced, plus Corefiles from deploy/ and
examples/, and Kubernetes objects from examples/cluster. Run from the repository root with the
example server on 127.0.0.1:1053: `cargo run -- -conf examples/Corefile & fuzz/make-seeds.py`."""
import json, os, pathlib, random, socket, struct

root = pathlib.Path(__file__).resolve().parent.parent
seeds = root / "fuzz" / "seeds"

def name(n):
    out = b""
    for label in n.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"

def query(qid, qname, qtype, edns=None, options=b""):
    ar = 1 if edns else 0
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, ar) + name(qname) + struct.pack(">HH", qtype, 1)
    if edns:
        q += b"\0" + struct.pack(">HHIH", 41, edns, 0x8000, len(options)) + options
    return q

queries = [
    query(1, "web.shop.svc.cluster.local.", 1),
    query(2, "web.shop.svc.cluster.local.", 28, 1232),
    query(3, "_http._tcp.web.shop.svc.cluster.local.", 33, 4096),
    query(4, "10.0.96.10.in-addr.arpa.", 12),
    query(5, "whoami.example.org.", 1, 1232, struct.pack(">HH", 10, 8) + os.urandom(8)),
    query(6, "web.example.org.", 255, 512, struct.pack(">HHHBB", 8, 7, 1, 24, 0) + b"\xc0\x00\x02"),
    query(7, "nosuch.shop.svc.cluster.local.", 1),
    query(8, "cluster.local.", 6),
]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(2)
replies = []
for q in queries:
    sock.sendto(q, ("127.0.0.1", 1053))
    replies.append(sock.recv(65535))

def write(target, items):
    d = seeds / target
    d.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(items):
        (d / f"seed-{i:02}").write_bytes(data)

write("wire_query", queries)
write("wire_message", replies + queries)
write("cache_entry", replies)
def snapshot(wire):
    key = b"\0" + struct.pack(">HH", 1, 1) + name("web.shop.svc.cluster.local.")
    sec = b"cluster.local.#0/success"
    item = struct.pack(">H", len(key)) + key + struct.pack(">IQI", 30, 1500, len(wire)) + wire
    return b"KDNSCACHE1" + struct.pack(">QI", 1700000000000, 1) + struct.pack(">H", len(sec)) + sec + struct.pack(">I", 1) + item
write("cache_snapshot", [snapshot(b"\0\0" + r[2:]) for r in replies[:3]])
corefiles = [p.read_bytes() for p in [root / "examples/Corefile"]]
for manifest in ["deploy/cluster-dns.yaml", "deploy/node-local-dns.yaml"]:
    text = (root / manifest).read_text()
    start = text.index("  Corefile: |\n") + len("  Corefile: |\n")
    block = []
    for line in text[start:].splitlines():
        if line.startswith("    ") or not line:
            block.append(line[4:])
        else:
            break
    corefiles.append("\n".join(block).encode())
write("corefile_parse", corefiles)
write("zone_file", [p.read_bytes() for p in sorted((root / "examples/zones").glob("db.*"))])
objects = []
for p in sorted((root / "examples/cluster").glob("*.yaml")):
    import yaml  # PyYAML (in the deploy venv)
    for doc in yaml.safe_load_all(p.read_text()):
        if doc:
            objects.extend(doc.get("items", [doc]) if doc.get("kind", "").endswith("List") else [doc])
write("k8s_objects", [json.dumps(objects).encode(), json.dumps(objects[:3] + [{"qname": "web.shop.svc.cluster.local."}]).encode()])
print("seeds written:", sum(1 for _ in seeds.rglob("seed-*")))
