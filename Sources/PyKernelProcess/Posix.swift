import Glibc
import PyKernelSupport
import _PyKernelProcessShims

/// Thin, careful wrappers around the system calls the module needs.
enum Posix {
    /// The text of an errno value.
    static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// Whether `code` says this process (EMFILE) or the system (ENFILE) has no descriptor left.
    static func isOutOfDescriptors(_ code: Int32) -> Bool { code == EMFILE || code == ENFILE }

    /// A close-on-exec pipe whose ends are both at fd 3 or above (so that they can never
    /// collide with the child's 0/1/2 in the spawn file actions), kept as the engine's
    /// (``EngineDescriptors``) until ``closeQuietly(_:)``.
    static func makePipe() throws(ProcessAPIError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard pk_pipe_cloexec(&fds) == 0 else {
            throw ProcessAPIError(.spawnFailed, "Could not create a pipe: \(describe(errno)).")
        }
        return (raiseAboveStdio(fds[0]), raiseAboveStdio(fds[1]))
    }

    /// Moves a descriptor to 3 or above (close-on-exec), if it is 0, 1 or 2, and keeps it as the
    /// engine's (``EngineDescriptors``: the code of a namespace context does not close it) until
    /// ``closeQuietly(_:)``.
    static func raiseAboveStdio(_ fd: Int32) -> Int32 {
        guard fd >= 0, fd < 3 else {
            EngineDescriptors.keep(fd)
            return fd
        }
        let moved = fcntl(fd, F_DUPFD_CLOEXEC, 3)
        guard moved >= 0 else { return fd }
        close(fd)
        EngineDescriptors.keep(moved)
        return moved
    }

    /// Opens a file close-on-exec, retrying on EINTR, kept as the engine's until
    /// ``closeQuietly(_:)``. Returns -1 and leaves errno set on failure.
    static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0o600) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return raiseAboveStdio(fd) }
            if errno != EINTR { return -1 }
        }
    }

    /// Closes `fd` (if not negative), which stops being the engine's.
    static func closeQuietly(_ fd: Int32) {
        guard fd >= 0 else { return }
        EngineDescriptors.forget(fd)
        _ = Glibc.close(fd)
    }

    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    /// Writes all bytes to a blocking descriptor. Returns `false` on an error.
    @discardableResult
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n > 0 {
                offset += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return false
            }
        }
        return true
    }

    @discardableResult
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { writeAll(fd, $0) }
    }

    /// Reads a whole small file (e.g. under /proc). Returns `nil` if it cannot be opened, with
    /// errno set.
    static func readSmallFile(_ path: String, limit: Int = 1 << 20) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { closeQuietly(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while result.count < limit {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n > 0 {
                result.append(contentsOf: buffer[0..<n])
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        return result
    }

    /// Reads up to `count` bytes at `offset` of an open file (none if `fd` is -1).
    static func readFile(_ fd: Int32, offset: Int, count: Int) -> [UInt8] {
        guard fd >= 0 else { return [] }
        var result = [UInt8](repeating: 0, count: max(0, count))
        var filled = 0
        while filled < count {
            let n = result.withUnsafeMutableBytes {
                pread(fd, $0.baseAddress! + filled, count - filled, off_t(offset + filled))
            }
            if n > 0 {
                filled += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        result.removeSubrange(filled...)
        return result
    }

    /// The size of a file, or `nil` if it does not exist.
    static func fileSize(_ path: String) -> Int? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int(st.st_size)
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(StartDirectory.fileSystemPath(path), &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    static func isExecutableFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && access(path, X_OK) == 0
    }

    /// The canonical absolute path of an existing file (symbolic links resolved).
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The target of a symbolic link (e.g. `/proc/<pid>/cwd`).
    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Removes a directory tree, ignoring errors.
    static func removeTree(_ path: String) {
        guard let dir = opendir(path) else {
            _ = unlink(path)
            return
        }
        var children: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name == "." || name == ".." { continue }
            children.append(name)
        }
        closedir(dir)
        for name in children {
            let child = path + "/" + name
            var st = stat()
            if lstat(child, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
                removeTree(child)
            } else {
                _ = unlink(child)
            }
        }
        _ = rmdir(path)
    }
}
