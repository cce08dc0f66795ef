#!/usr/bin/env python3
"""mkimage.py OUT.tar REF ENTRYPOINT_JSON SRC=DST... : a one-layer image in `docker save` format, which
`ctr images import` accepts (no registry is reachable here). SRC=DST copies a host file to DST in the image;
@TARGET=DST makes DST a symlink to TARGET. Deterministic: same inputs, same image id."""
import hashlib, io, json, sys, tarfile

out, ref, entrypoint, specs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
EPOCH = 1704067200  # fixed mtime: reproducible layer digests


def entry(name, kind, mode, size=0, link=""):
    ti = tarfile.TarInfo(name.strip("/"))
    ti.type, ti.mode, ti.size, ti.linkname, ti.mtime = kind, mode, size, link, EPOCH
    return ti


layer_buf = io.BytesIO()
with tarfile.open(fileobj=layer_buf, mode="w", format=tarfile.GNU_FORMAT) as layer:
    made = set()

    def parents(path):
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                made.add(d)
                layer.addfile(entry(d, tarfile.DIRTYPE, 0o755))

    for d, mode in (("tmp", 0o1777), ("etc", 0o755), ("proc", 0o755), ("sys", 0o755), ("dev", 0o755), ("data", 0o755)):
        made.add(d)
        layer.addfile(entry(d, tarfile.DIRTYPE, mode))
    for spec in specs:
        src, dst = spec.split("=", 1)
        parents(dst)
        if src.startswith("@"):
            layer.addfile(entry(dst, tarfile.SYMTYPE, 0o777, link=src[1:]))
        else:
            data = open(src, "rb").read()
            layer.addfile(entry(dst, tarfile.REGTYPE, 0o755, len(data)), io.BytesIO(data))
layer_bytes = layer_buf.getvalue()
layer_sha = hashlib.sha256(layer_bytes).hexdigest()
config = json.dumps({
    "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
    "config": {"Entrypoint": entrypoint, "WorkingDir": "/",
               "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_sha]},
    "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "flocker scripts/k8s/mkimage.py"}],
}, sort_keys=True).encode()
config_sha = hashlib.sha256(config).hexdigest()
manifest = json.dumps([{"Config": config_sha + ".json", "RepoTags": [ref], "Layers": [layer_sha + "/layer.tar"]}]).encode()
with tarfile.open(out, "w") as t:
    for name, data in ((config_sha + ".json", config), (layer_sha + "/layer.tar", layer_bytes), ("manifest.json", manifest)):
        ti = entry(name, tarfile.REGTYPE, 0o644, len(data))
        t.addfile(ti, io.BytesIO(data))
