#!/usr/bin/env python3
# make-tar-corpus.py: writes the seed archives of fuzz-import into
# tests/fuzz/corpus/fuzz-import/ (run once; the results are committed).
# Each is a tiny tar cut right after its end blocks. The last byte of an
# input picks the importer's settings (fuzz-import.c): a tar ends in zeros
# (chardev markers, privileged), and a few seeds repeat with a knob byte
# appended (1 xattr, 2 file, 6 file unprivileged).
#
# Usage: tests/fuzz/make-tar-corpus.py [OUTDIR]
import gzip
import io
import os
import sys
import tarfile

here = os.path.dirname(os.path.abspath(__file__))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "fuzz-import")
os.makedirs(out, exist_ok=True)


def entry(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, link="", dev=(0, 0), xattrs=None):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = 1600000000
    ti.uid = ti.gid = 1000
    ti.uname = ti.gname = ""
    ti.linkname = link
    ti.devmajor, ti.devminor = dev
    if kind == tarfile.REGTYPE:
        ti.size = len(data)
    if xattrs:
        ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
    return ti, data


def tar(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    tf = tarfile.open(fileobj=buf, mode="w", format=fmt)
    for ti, data in entries:
        tf.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    tf.close()
    return buf.getvalue()[: tf.offset]


def d(name, mode=0o755):
    return entry(name, tarfile.DIRTYPE, mode=mode)


def f(name, data=b"x\n", mode=0o644, xattrs=None):
    return entry(name, data=data, mode=mode, xattrs=xattrs)


def sym(name, target):
    return entry(name, tarfile.SYMTYPE, link=target, mode=0o777)


def hard(name, target):
    return entry(name, tarfile.LNKTYPE, link=target)


seeds = {
    "plain": [d("a"), f("a/f", b"hello\n"), d("a/b"), f("a/b/g", b"", 0o600), f("top")],
    "whiteouts": [d("a"), f("a/.wh.gone", b""), f(".wh.top", b""), f("a/keep")],
    "opaque": [d("a"), f("a/.wh..wh..opq", b""), f("a/new"), d("b"), f("b/.wh..wh..opq", b"")],
    "aufs-meta": [d(".wh..wh.plnk"), f(".wh..wh.plnk/1.2", b""), f(".wh..wh.aufs", b"")],
    "hardlinks": [d("a"), f("a/f", b"data\n"), hard("a/g", "a/f"), hard("h", "a/f"),
                  hard("self", "self"), hard("miss", "nowhere"), hard("dir", "a")],
    "symlinks": [sym("l", "a"), d("a"), f("a/f"), f("l/through"), sym("abs", "/etc/passwd"),
                 sym("up", "../canary"), f("up/x")],
    "dotdot": [f("../escape"), f("a/../../escape2"), f("./ok"), f("a/./b//c"), f("..")],
    "absolute": [f("/abs"), d("/etc"), f("//double")],
    "devices": [entry("null", tarfile.CHRTYPE, dev=(1, 3)), entry("blk", tarfile.BLKTYPE, dev=(7, 0)),
                entry("fifo", tarfile.FIFOTYPE), entry("wh", tarfile.CHRTYPE, dev=(0, 0))],
    "xattrs": [f("x", xattrs={"user.a": "1", "trusted.overlay.opaque": "y",
                              "user.overlay.redirect": "/..", "security.capability": "\0"}),
               d("dx")],
    "replace": [f("a"), d("a"), f("a/f"), f("b"), f("b"), d("c"), f("c"), sym("e", "x"), f("e")],
    "longname": [f("n" * 255), f("m" * 256), d("p" * 200), f("p" * 200 + "/" + "q" * 200)],
    # regression: a directory replaced by a symlink; its mode and times
    # were applied at the end through the link (fix_dirs, tools/import.c)
    "regress-dir-then-symlink": [d("d", 0o777), sym("d", "../canary")],
    # entries inside a marker name: refused (walk_parent, tools/import.c)
    "inside-markers": [d("d"), f("d/.wh..wh..opq/x"), f("d/.wh.x/y"), f(".wh.top/z"),
                       d("d/.wh.dir/"), hard("h", "d/.wh.x/y")],
}
knobbed = {"whiteouts": [1, 2, 6], "opaque": [1, 2], "devices": [4], "hardlinks": [6]}

for name, entries in seeds.items():
    data = tar(entries)
    with open(os.path.join(out, name + ".tar"), "wb") as fh:
        fh.write(data)
    for k in knobbed.get(name, []):
        with open(os.path.join(out, "%s-knob%d.tar" % (name, k)), "wb") as fh:
            fh.write(data + bytes([k]))
# an archive cut in the middle of a file's data: the file is left out
with open(os.path.join(out, "truncated.tar"), "wb") as fh:
    fh.write(tar([f("a", b"b" * 5000), f("z")])[:2048])
with open(os.path.join(out, "gnu.tar"), "wb") as fh:
    fh.write(tar(seeds["plain"] + seeds["whiteouts"][1:], fmt=tarfile.GNU_FORMAT))
with open(os.path.join(out, "plain.tar.gz"), "wb") as fh:
    fh.write(gzip.compress(tar(seeds["plain"]), mtime=0))
