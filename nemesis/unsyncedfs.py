"""unsyncedfs: a FUSE passthrough that loses every write not fsynced, as a machine that loses power does.

It runs inside a node's container, put there by the lose-unsynced fault family (nemesis/lose_unsynced.py) as
the node's command wrapper:

    python3 unsyncedfs.py run --dir DATA_DIR --socket SOCK -- NODE_COMMAND...

mounts itself over DATA_DIR (serving that same directory through a descriptor opened before the mount, as
libfuse's passthrough_ll does), checks that the mount serves, then execs the node's command, which stays the
container's PID 1. Every write goes through to the file at once, so a process crash (the kill fault, a node
that exits) loses nothing, as the page cache survives a crashed process. For every file written since its
last fsync it keeps in memory the bytes that were there at that fsync (and the file's size then): a file
created since holds nothing synced at all.

    python3 unsyncedfs.py drop --socket SOCK

(sent by the fault, over the unix socket) puts those bytes back and cuts every such file to its synced size,
fsyncs, prints what it dropped as JSON (per file: size and sha256 before and after, bytes dropped), and
from then on holds every request of the mount unanswered, so the node can neither see nor write anything
more before the fault kills its container. A restarted container mounts a new layer over what is left:
exactly the fsynced state. Names are durable at once (create, rename, unlink and mkdir go straight to the
directory, as a journaling filesystem commits them), so a file renamed into place without an fsync of its
own comes back empty, as on ext4. `status` prints the layer's state without changing it.

`Unsynced` (the bookkeeping) is pure and tested on its own; the rest needs Debian's python3-pyfuse3
(libfuse 3, trio), which the fault's node layer installs, and is imported only by `run`.
"""

from __future__ import annotations

import argparse
import errno
import faulthandler
import hashlib
import json
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

PAGE = 4096
# Open flags a backing descriptor does not take (the kernel did their work: creation, truncation, append offsets).
_NOT_PASSED = os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_NOCTTY | getattr(os, "O_DIRECT", 0)
READY_TIMEOUT_S = 20.0
# A drop hashes each file it changes before and after, except files larger than this: etcd and ZooKeeper
# preallocate 64 MB log segments, and every node drops at once, on a loaded machine.
HASH_LIMIT = 16 << 20


@dataclass
class FileState:
    """A file written since its last fsync: its size then, and the synced bytes of every page changed since."""

    synced_size: int
    pages: dict[int, bytes] = field(default_factory=dict)


class Unsynced:
    """What to put back to lose every write since each file's last fsync. Pure: the caller reads the file.

    Invariant: for a tracked file, any page below its synced size that is not saved still holds its synced
    bytes; so a page is saved (read) just before its first change, by a write or a truncate."""

    def __init__(self) -> None:
        self.files: dict[Hashable, FileState] = {}

    def created(self, key: Hashable) -> None:
        """A file that did not exist at its directory's last sync: nothing of it is synced."""
        self.files[key] = FileState(0)

    def before_write(self, key: Hashable, offset: int, length: int, size: int,
                     read: Callable[[int, int], bytes]) -> None:
        """Call before writing length bytes at offset; size is the file's size now, read(off, n) its bytes."""
        st = self.files.setdefault(key, FileState(size))
        self._save(st, offset, offset + length, read)

    def before_truncate(self, key: Hashable, new_size: int, size: int, read: Callable[[int, int], bytes]) -> None:
        st = self.files.setdefault(key, FileState(size))
        self._save(st, new_size, st.synced_size, read)

    def synced(self, key: Hashable) -> None:
        """fsync or fdatasync of the file: what it holds now is durable."""
        self.files.pop(key, None)

    def _save(self, st: FileState, start: int, end: int, read: Callable[[int, int], bytes]) -> None:
        end = min(end, st.synced_size)
        if start >= end:
            return
        for p in range(start // PAGE, (end - 1) // PAGE + 1):
            if p not in st.pages:
                lo = p * PAGE
                st.pages[p] = read(lo, min(PAGE, st.synced_size - lo))

    def unsynced_bytes(self, key: Hashable, size: int) -> int:
        """An upper bound of what dropping would change in a file of this size now (for `status`)."""
        st = self.files.get(key)
        if st is None:
            return 0
        return max(0, size - st.synced_size) + sum(len(b) for b in st.pages.values())


def differing(now: bytes, saved: bytes) -> int:
    """How many bytes of now differ from saved (a length difference counts too); chunk by chunk, so equal
    stretches cost one comparison."""
    n = abs(len(now) - len(saved))
    for lo in range(0, min(len(now), len(saved)), 256):
        a, b = now[lo:lo + 256], saved[lo:lo + 256]
        if a != b:
            n += sum(x != y for x, y in zip(a, b, strict=False))
    return n


def restore(st: FileState, data: bytes) -> tuple[bytes, int]:
    """The file's synced content from its current content, and how many bytes that drops. Pure."""
    buf = bytearray(data)
    changed = max(0, len(buf) - st.synced_size)
    for p, saved in st.pages.items():
        lo = p * PAGE
        changed += differing(bytes(buf[lo:lo + len(saved)]), saved)
        if len(buf) < lo:
            buf.extend(b"\0" * (lo - len(buf)))
        buf[lo:lo + len(saved)] = saved
    return bytes(buf[:st.synced_size]), changed


# ---- control: the fault talks to the layer over a unix socket -------------------------------------------

def control(sock_path: str, command: str, timeout: float = 120.0) -> dict:
    """Send one command ("drop", "status") to the layer; its JSON answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return json.loads(b"".join(chunks) or b"{}")


def sha256_fd(fd: int, limit: int | None = None) -> tuple[str | None, int]:
    """The file's sha256 and size; no hash (None) for a file larger than limit."""
    size = os.fstat(fd).st_size
    if limit is not None and size > limit:
        return None, size
    h, off = hashlib.sha256(), 0
    while True:
        chunk = os.pread(fd, 1 << 20, off)
        if not chunk:
            return h.hexdigest(), off
        h.update(chunk)
        off += len(chunk)


# ---- the filesystem (needs pyfuse3) -----------------------------------------------------------------------

def _filesystem(root_fd: int):
    import pyfuse3
    import trio

    def proc(fd: int) -> str:
        return f"/proc/self/fd/{fd}"

    def oserror(fn):
        async def wrapped(self, *args, **kwargs):
            await self._gate()
            try:
                return await fn(self, *args, **kwargs)
            except OSError as e:
                raise pyfuse3.FUSEError(e.errno or errno.EIO) from None
        wrapped.__name__ = fn.__name__
        return wrapped

    @dataclass
    class Inode:
        fd: int  # O_PATH
        nlookup: int = 0
        link: tuple[int, bytes] | None = None  # (parent, name) of a symlink, for readlink

    class Ops(pyfuse3.Operations):
        enable_writeback_cache = False  # every write must reach us when it is made

        def __init__(self) -> None:
            super().__init__()
            self.inodes: dict[int, Inode] = {pyfuse3.ROOT_INODE: Inode(root_fd, 1)}
            self.by_key: dict[tuple[int, int], int] = {}
            st = os.fstat(root_fd)
            self.by_key[(st.st_dev, st.st_ino)] = pyfuse3.ROOT_INODE
            self.key_of: dict[int, tuple[int, int]] = {}
            self.dirs: dict[int, int] = {}  # fh of an open directory -> its inode
            self.next_id = pyfuse3.ROOT_INODE + 1
            self.handles: dict[int, int] = {}  # fh (a read-write descriptor) -> inode
            self.tracked_fds: dict[int, int] = {}  # inode -> an O_PATH descriptor kept while it is tracked
            self.unsynced = Unsynced()
            self.frozen = False
            self.started = time.time()
            self.writes = 0
            self.fsyncs = 0

        async def _gate(self) -> None:
            # After a drop nothing more reaches the files. A request is refused, not held: the kernel
            # waits out a request the daemon has read even for SIGKILL, so a held one would keep the
            # killed node's container from ever exiting. Its processes are stopped by then, so no
            # code of theirs runs to see the error.
            if self.frozen:
                raise pyfuse3.FUSEError(errno.EIO)

        # -- inodes
        def _attr(self, ino: int, st: os.stat_result):
            a = pyfuse3.EntryAttributes()
            for name in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_rdev", "st_size", "st_blksize",
                         "st_blocks", "st_atime_ns", "st_mtime_ns", "st_ctime_ns"):
                setattr(a, name, getattr(st, name))
            a.st_ino = ino
            a.generation = 0
            a.entry_timeout = 1.0
            a.attr_timeout = 1.0
            return a

        def _register(self, parent: int, name: bytes, count: bool = True):
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=self.inodes[parent].fd)
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            ino = self.by_key.get(key)
            if ino is None or ino not in self.inodes:
                ino = self.next_id
                self.next_id += 1
                self.inodes[ino] = Inode(fd)
                self.by_key[key] = ino
                self.key_of[ino] = key
            else:
                os.close(fd)
            node = self.inodes[ino]
            if stat.S_ISLNK(st.st_mode):
                node.link = (parent, name)
            if count:
                node.nlookup += 1
            return ino, st

        def _forget_one(self, ino: int, n: int) -> None:
            node = self.inodes.get(ino)
            if node is None or ino == pyfuse3.ROOT_INODE:
                return
            node.nlookup -= n
            if node.nlookup <= 0:
                del self.inodes[ino]
                self.by_key.pop(self.key_of.pop(ino), None)
                os.close(node.fd)

        async def forget(self, inode_list):
            for ino, n in inode_list:
                self._forget_one(ino, n)

        @oserror
        async def lookup(self, parent_inode, name, ctx=None):
            ino, st = self._register(parent_inode, name)
            return self._attr(ino, st)

        @oserror
        async def getattr(self, inode, ctx=None):
            return self._attr(inode, os.stat(self.inodes[inode].fd))

        @oserror
        async def setattr(self, inode, attr, fields, fh, ctx):
            fd = self.inodes[inode].fd
            if fields.update_size:
                rw = fh if fh is not None else os.open(proc(fd), os.O_RDWR)
                try:
                    size = os.fstat(rw).st_size
                    self.unsynced.before_truncate(inode, attr.st_size, size, lambda o, n: os.pread(rw, n, o))
                    self._keep(inode)
                    os.ftruncate(rw, attr.st_size)
                finally:
                    if fh is None:
                        os.close(rw)
            if fields.update_mode:
                os.chmod(proc(fd), stat.S_IMODE(attr.st_mode))
            if fields.update_uid or fields.update_gid:
                os.chown(proc(fd), attr.st_uid if fields.update_uid else -1,
                         attr.st_gid if fields.update_gid else -1)
            if fields.update_atime or fields.update_mtime:
                st = os.stat(fd)
                os.utime(proc(fd), ns=(attr.st_atime_ns if fields.update_atime else st.st_atime_ns,
                                       attr.st_mtime_ns if fields.update_mtime else st.st_mtime_ns))
            return self._attr(inode, os.stat(fd))

        def _keep(self, inode: int) -> None:
            if inode in self.unsynced.files and inode not in self.tracked_fds:
                self.tracked_fds[inode] = os.dup(self.inodes[inode].fd)

        @oserror
        async def readlink(self, inode, ctx):
            link = self.inodes[inode].link
            if link is None:
                raise OSError(errno.EINVAL, "not a symlink")
            parent, name = link
            return os.fsencode(os.readlink(name, dir_fd=self.inodes[parent].fd))

        @oserror
        async def opendir(self, inode, ctx):
            fh = os.open(proc(self.inodes[inode].fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self.dirs[fh] = inode
            return fh

        @oserror
        async def readdir(self, fh, start_id, token):
            names = sorted(os.fsencode(n) for n in os.listdir(fh))
            ino_of_dir = self.dirs[fh]
            for i, name in enumerate(names[start_id:], start=start_id + 1):
                try:
                    ino, st = self._register(ino_of_dir, name, count=False)
                except FileNotFoundError:
                    continue
                if not pyfuse3.readdir_reply(token, name, self._attr(ino, st), i):
                    if self.inodes[ino].nlookup == 0:
                        self._forget_one(ino, 0)
                    return
                self.inodes[ino].nlookup += 1

        @oserror
        async def releasedir(self, fh):
            self.dirs.pop(fh, None)
            os.close(fh)

        def _owned(self, parent, name, ctx):
            os.chown(name, ctx.uid, ctx.gid, dir_fd=self.inodes[parent].fd, follow_symlinks=False)
            ino, st = self._register(parent, name)
            return self._attr(ino, st)

        @oserror
        async def mkdir(self, parent_inode, name, mode, ctx):
            os.mkdir(name, stat.S_IMODE(mode) & ~ctx.umask, dir_fd=self.inodes[parent_inode].fd)
            return self._owned(parent_inode, name, ctx)

        @oserror
        async def mknod(self, parent_inode, name, mode, rdev, ctx):
            os.mknod(name, mode & ~ctx.umask, rdev, dir_fd=self.inodes[parent_inode].fd)
            return self._owned(parent_inode, name, ctx)

        @oserror
        async def symlink(self, parent_inode, name, target, ctx):
            os.symlink(target, name, dir_fd=self.inodes[parent_inode].fd)
            return self._owned(parent_inode, name, ctx)

        @oserror
        async def link(self, inode, new_parent_inode, new_name, ctx):
            os.link(proc(self.inodes[inode].fd), new_name, dst_dir_fd=self.inodes[new_parent_inode].fd,
                    follow_symlinks=True)
            ino, st = self._register(new_parent_inode, new_name)
            return self._attr(ino, st)

        @oserror
        async def rmdir(self, parent_inode, name, ctx):
            os.rmdir(name, dir_fd=self.inodes[parent_inode].fd)

        @oserror
        async def unlink(self, parent_inode, name, ctx):
            os.unlink(name, dir_fd=self.inodes[parent_inode].fd)

        @oserror
        async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
            if flags:
                raise OSError(errno.EINVAL, "rename flags are not supported")
            os.rename(name_old, name_new, src_dir_fd=self.inodes[parent_inode_old].fd,
                      dst_dir_fd=self.inodes[parent_inode_new].fd)

        # -- files
        def _rw_flags(self, flags: int) -> int:
            # Read-write whatever the caller asked (the kernel checked its permission): a write must read
            # what it overwrites first. No O_APPEND: the kernel gives every write its offset.
            return (flags & ~_NOT_PASSED & ~os.O_ACCMODE) | os.O_RDWR | os.O_CLOEXEC

        @oserror
        async def open(self, inode, flags, ctx):
            fd = os.open(proc(self.inodes[inode].fd), self._rw_flags(flags))
            self.handles[fd] = inode
            return pyfuse3.FileInfo(fh=fd)

        @oserror
        async def create(self, parent_inode, name, mode, flags, ctx):
            pfd = self.inodes[parent_inode].fd
            fd = os.open(name, self._rw_flags(flags) | os.O_CREAT | (flags & os.O_EXCL),
                         stat.S_IMODE(mode) & ~ctx.umask, dir_fd=pfd)
            try:
                os.fchown(fd, ctx.uid, ctx.gid)
                ino, st = self._register(parent_inode, name)
            except OSError:
                os.close(fd)
                raise
            if st.st_size == 0 and ino not in self.unsynced.files:
                self.unsynced.created(ino)
                self._keep(ino)
            self.handles[fd] = ino
            return pyfuse3.FileInfo(fh=fd), self._attr(ino, st)

        @oserror
        async def read(self, fh, off, size):
            return os.pread(fh, size, off)

        @oserror
        async def write(self, fh, off, buf):
            inode = self.handles[fh]
            self.unsynced.before_write(inode, off, len(buf), os.fstat(fh).st_size, lambda o, n: os.pread(fh, n, o))
            self._keep(inode)
            self.writes += 1
            return os.pwrite(fh, buf, off)

        @oserror
        async def flush(self, fh):
            return None  # close() is not fsync()

        @oserror
        async def release(self, fh):
            self.handles.pop(fh, None)
            os.close(fh)

        @oserror
        async def fsync(self, fh, datasync):
            inode = self.handles[fh]
            self.unsynced.synced(inode)
            kept = self.tracked_fds.pop(inode, None)
            if kept is not None:
                os.close(kept)
            self.fsyncs += 1
            await trio.to_thread.run_sync(os.fdatasync if datasync else os.fsync, fh)

        @oserror
        async def fsyncdir(self, fh, datasync):
            await trio.to_thread.run_sync(os.fsync, fh)

        @oserror
        async def statfs(self, ctx):
            sv = os.statvfs(proc(root_fd))
            out = pyfuse3.StatvfsData()
            for name in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree",
                         "f_favail", "f_namemax"):
                setattr(out, name, getattr(sv, name))
            return out

        # -- the fault
        def status(self) -> dict:
            files = {}
            for ino, fd in self.tracked_fds.items():
                if ino in self.unsynced.files:
                    size = os.fstat(fd).st_size
                    files[_where(fd)] = self.unsynced.unsynced_bytes(ino, size)
            return {"mounted": True, "frozen": self.frozen, "tracked_files": len(self.unsynced.files),
                    "unsynced_bytes_at_most": sum(files.values()), "files": files, "writes": self.writes,
                    "fsyncs": self.fsyncs, "up_s": round(time.time() - self.started, 1)}

        def drop(self, spare: int | None = None) -> dict:
            """Stop the node's processes, freeze, put every tracked file back to its synced state; what was
            dropped. PID 1 (the node) is stopped by the fault from outside, where SIGSTOP reaches it."""
            self.frozen = True
            stopped = stop_others(spare)
            files, skipped = {}, {}
            for ino, st in sorted(self.unsynced.files.items()):
                pfd = self.tracked_fds.get(ino) or (self.inodes[ino].fd if ino in self.inodes else None)
                if pfd is None:
                    skipped[str(ino)] = "no descriptor left"
                    continue
                where = _where(pfd)
                if os.fstat(pfd).st_nlink == 0 or where.endswith(" (deleted)"):
                    skipped[where] = "unlinked since"  # its name is gone, durably: nothing to lose
                    continue
                fd = os.open(proc(pfd), os.O_RDWR)
                try:
                    # Streamed: a data dir may hold preallocated 64 MB segments (etcd, ZooKeeper).
                    sha_before, size_before = sha256_fd(fd, HASH_LIMIT)
                    changed = max(0, size_before - st.synced_size)
                    for p, saved in st.pages.items():
                        changed += differing(os.pread(fd, len(saved), p * PAGE), saved)
                        os.pwrite(fd, saved, p * PAGE)
                    os.ftruncate(fd, st.synced_size)
                    os.fsync(fd)
                    sha_after, size_after = sha256_fd(fd, HASH_LIMIT)
                    back = all(os.pread(fd, len(saved), p * PAGE) == saved for p, saved in st.pages.items())
                finally:
                    os.close(fd)
                if size_after != st.synced_size or not back:
                    raise RuntimeError(f"{where}: the synced content does not read back")
                files[where] = {"size_before": size_before, "size_after": size_after,
                                "sha256_before": sha_before, "sha256_after": sha_after,
                                "dropped_bytes": changed, "synced_size": st.synced_size}
            self.unsynced.files.clear()
            dropped = {k: v for k, v in files.items() if v["dropped_bytes"]}
            return {"dropped_files": len(dropped), "dropped_bytes": sum(v["dropped_bytes"] for v in files.values()),
                    "files": files, "skipped": skipped, "frozen": True, "writes": self.writes,
                    "fsyncs": self.fsyncs, "stopped_processes": stopped}

    return Ops


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def stop_others(spare: int | None = None) -> int:
    """SIGSTOP every descendant of PID 1 (the node's own processes: a script's children, daemons it left)
    but this one and spare's line (the control command); how many. Nothing else: a `docker exec` being
    set up at that instant (runc's init, whose parent is outside), stopped, held Docker's lock on the
    container for good."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            children.setdefault(_parent(int(name)), []).append(int(name))
    keep, pid = {os.getpid()}, spare or 0
    while pid > 1 and pid not in keep:  # the control command and what runs it (an exec orphan is PID 1's)
        keep.add(pid)
        pid = _parent(pid)
    todo, n = list(children.get(1, [])), 0
    while todo:
        pid = todo.pop()
        if pid in keep:
            continue
        todo += children.get(pid, [])
        try:
            os.kill(pid, signal.SIGSTOP)
            n += 1
        except OSError:
            pass
    return n


def _where(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd {fd}"


async def _serve(ops, mountpoint: str, sock_path: str, ready_fd: int) -> None:
    import pyfuse3
    import trio

    async def handle(stream) -> None:
        async with stream:
            line = b""
            while not line.endswith(b"\n"):
                chunk = await stream.receive_some(1024)
                if not chunk:
                    return
                line += chunk
            cmd, _, arg = line.strip().decode().partition(" ")
            try:
                reply = ops.drop(int(arg) if arg.isdigit() else None) if cmd == "drop" else \
                    ops.status() if cmd == "status" else {"error": f"unknown command {cmd!r}"}
            except Exception as e:  # the fault reads this and stops the run with it
                reply = {"error": f"{type(e).__name__}: {e}"}
            await stream.send_all(json.dumps(reply).encode())

    if os.path.exists(sock_path):
        os.unlink(sock_path)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(sock_path)
    sock.listen(4)
    listener = trio.SocketListener(sock)
    os.write(ready_fd, b"ok\n")
    os.close(ready_fd)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, [listener])
        await pyfuse3.main()


def _mounted(path: str) -> bool:
    """Whether path is a FUSE mount of ours (in this mount namespace)."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            if parts[4] == real and parts[sep + 1].startswith("fuse") and parts[sep + 2] == "unsyncedfs":
                return True
    return False


def run(args: argparse.Namespace) -> int:
    """Mount the layer over args.dir in a child process, check it serves, exec the node's command."""
    os.makedirs(args.dir, exist_ok=True)
    if not args.command:
        print("unsyncedfs: no node command after --", file=sys.stderr)
        return 2
    r, w = os.pipe()
    os.set_inheritable(w, True)
    # The layer serves from a process of its own, without the node's LD_PRELOAD (libfaketime of a
    # FAKETIME target): its clock and its I/O are nobody's fault to inject.
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("FAKETIME")}
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), "serve", "--dir", args.dir,
                                       "--socket", args.socket, "--ready-fd", str(w)], env)
        finally:
            os._exit(1)
    os.close(w)
    deadline = time.monotonic() + READY_TIMEOUT_S
    got = b""
    while time.monotonic() < deadline and not got.endswith(b"\n"):
        chunk = os.read(r, 4096)
        if not chunk:
            break
        got += chunk
    os.close(r)
    problem = None
    if got.strip() != b"ok":
        problem = got.decode(errors="replace").strip() or "the layer exited before mounting"
    elif not _mounted(args.dir):
        problem = f"{args.dir} is not a FUSE mount after mounting"
    else:
        probe = os.path.join(args.dir, ".unsyncedfs-probe")
        try:
            with open(probe, "wb") as f:
                f.write(b"probe")
                f.flush()
                os.fsync(f.fileno())
            with open(probe, "rb") as f:
                if f.read() != b"probe":
                    problem = "a probe file did not read back"
            os.unlink(probe)
        except OSError as e:
            problem = f"probe write through the mount failed: {e}"
    if problem:
        print(f"unsyncedfs: cannot put the lose-unsynced layer over {args.dir}: {problem}", file=sys.stderr)
        return 2
    print(f"unsyncedfs: lose-unsynced layer mounted over {args.dir} (pid {pid})", file=sys.stderr, flush=True)
    os.execvp(args.command[0], args.command)
    return 2  # not reached


def serve(args: argparse.Namespace) -> int:
    """The layer's own process: mount over args.dir, say so on --ready-fd, serve until killed."""
    w = args.ready_fd
    # A layer that stops answering says where it is: SIGUSR1 (sent by a control command that timed
    # out) prints every thread's stack to the node's log.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    with open(args.socket + ".pid", "w") as f:
        f.write(str(os.getpid()))
    try:
        import pyfuse3
        import trio

        root_fd = os.open(args.dir, os.O_PATH | os.O_DIRECTORY)
        ops = _filesystem(root_fd)()
        options = set(pyfuse3.default_options) | {"allow_other", "fsname=unsyncedfs", "subtype=unsyncedfs"}
        pyfuse3.init(ops, args.dir, options)
        trio.run(_serve, ops, args.dir, args.socket, w)
    except BaseException as e:
        try:
            os.write(w, f"error {type(e).__name__}: {e}\n".encode())
        except OSError:
            pass
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="unsyncedfs", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="mount over --dir, then exec the command after --")
    r.add_argument("--dir", required=True)
    r.add_argument("--socket", required=True)
    r.add_argument("command", nargs=argparse.REMAINDER)
    sv = sub.add_parser("serve", help="(run's child) mount over --dir and serve")
    sv.add_argument("--dir", required=True)
    sv.add_argument("--socket", required=True)
    sv.add_argument("--ready-fd", type=int, required=True)
    for name in ("drop", "status"):
        c = sub.add_parser(name)
        c.add_argument("--socket", required=True)
        c.add_argument("--report", help="also write the answer to this file (read back if the output is lost)")
    args = p.parse_args(argv)
    if args.cmd == "run":
        if args.command and args.command[0] == "--":
            args.command = args.command[1:]
        return run(args)
    if args.cmd == "serve":
        return serve(args)
    try:
        reply = control(args.socket, f"drop {os.getpid()}" if args.cmd == "drop" else args.cmd)
    except OSError as e:
        try:  # its stacks to the node's log, for whoever reads why
            with open(args.socket + ".pid") as f:
                os.kill(int(f.read()), signal.SIGUSR1)
        except (OSError, ValueError):
            pass
        print(json.dumps({"error": f"the layer does not answer on {args.socket}: {e} (its stacks are in the "
                                   "node's log)"}))
        return 1
    text = json.dumps(reply)
    if args.report:
        with open(args.report + ".tmp", "w") as f:
            f.write(text)
        os.replace(args.report + ".tmp", args.report)
    print(text)
    return 1 if "error" in reply else 0


if __name__ == "__main__":
    sys.exit(main())
