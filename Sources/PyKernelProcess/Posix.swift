import Glibc

/// Thin, careful wrappers around the system calls the module needs.
enum Posix {
    // glibc keeps these behind _GNU_SOURCE, which the Swift Glibc module does not define,
    // so they are looked up at run time.
    private typealias Pipe2Function = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    private typealias AddChdirFunction = @convention(c) (
        UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>
    ) -> Int32
    private typealias AddClosefromFunction = @convention(c) (
        UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32
    ) -> Int32

    nonisolated(unsafe) private static let libc = dlopen(nil, RTLD_NOW)
    private static let pipe2Function: Pipe2Function? = dlsym(libc, "pipe2").map {
        unsafeBitCast($0, to: Pipe2Function.self)
    }
    private static let addChdir: AddChdirFunction? = dlsym(
        libc, "posix_spawn_file_actions_addchdir_np"
    ).map { unsafeBitCast($0, to: AddChdirFunction.self) }
    private static let addClosefrom: AddClosefromFunction? = dlsym(
        libc, "posix_spawn_file_actions_addclosefrom_np"
    ).map { unsafeBitCast($0, to: AddClosefromFunction.self) }

    /// The text of an errno value.
    static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// A close-on-exec pipe whose ends are both at fd 3 or above (so that they can never
    /// collide with the child's 0/1/2 in the spawn file actions).
    static func makePipe() throws(ProcessAPIError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        let rc: Int32
        if let pipe2Function {
            rc = pipe2Function(&fds, O_CLOEXEC)
        } else {
            rc = pipe(&fds)
            if rc == 0 {
                _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
                _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
            }
        }
        if rc != 0 {
            throw ProcessAPIError(.spawnFailed, "could not create a pipe: \(describe(errno))")
        }
        return (raiseAboveStdio(fds[0]), raiseAboveStdio(fds[1]))
    }

    /// Moves a descriptor to 3 or above (close-on-exec), if it is 0, 1 or 2.
    static func raiseAboveStdio(_ fd: Int32) -> Int32 {
        guard fd >= 0, fd < 3 else { return fd }
        let moved = fcntl(fd, F_DUPFD_CLOEXEC, 3)
        guard moved >= 0 else { return fd }
        close(fd)
        return moved
    }

    /// Opens a file close-on-exec, retrying on EINTR. Returns -1 and leaves errno set on failure.
    static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0o600) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return raiseAboveStdio(fd) }
            if errno != EINTR { return -1 }
        }
    }

    static func closeQuietly(_ fd: Int32) {
        if fd >= 0 { _ = Glibc.close(fd) }
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

    /// Reads a whole small file (e.g. under /proc). Returns `nil` if it cannot be opened.
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

    /// Reads up to `count` bytes at `offset` of the file at `path`. `nil` if it cannot be opened.
    static func readFile(_ path: String, offset: Int, count: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { closeQuietly(fd) }
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
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func isExecutableFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && access(path, X_OK) == 0
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

    // MARK: - Exit status

    /// The shell convention: the exit status, or `128 + n` for a process killed by signal `n`.
    static func exitCode(fromWaitStatus status: Int32) -> Int32 {
        let signal = status & 0x7f
        if signal == 0 { return (status >> 8) & 0xff }
        return 128 + signal
    }

    // MARK: - Spawning

    /// Where a child's standard stream comes from or goes to.
    enum Stdio {
        /// `/dev/null`.
        case null
        /// A descriptor of ours, duplicated into the child.
        case descriptor(Int32)
        /// A file, created if needed and appended to.
        case appendFile(String)
        /// A file opened for reading.
        case readFile(String)
    }

    /// What to start.
    struct SpawnSpec {
        var executable: String
        /// The full argument vector, `argv[0]` included.
        var arguments: [String]
        var environment: [String: String]
        var workingDirectory: String
        var stdin: Stdio = .null
        var stdout: Stdio = .null
        var stderr: Stdio = .null
    }

    /// Starts a process with `posix_spawn`, in a new process group of its own (pgid = pid), with
    /// an empty signal mask and every signal at its default disposition, inheriting only
    /// descriptors 0, 1 and 2.
    /// Spawns `spec` with its stdout and stderr on two new pipes; returns the pid and the read
    /// ends (the caller owns them). On failure every descriptor it opened is closed.
    static func spawnWithOutputPipes(_ spec: SpawnSpec) throws(ProcessAPIError) -> (pid: pid_t, stdout: Int32, stderr: Int32) {
        let out = try makePipe()
        let err: (read: Int32, write: Int32)
        do {
            err = try makePipe()
        } catch {
            closeQuietly(out.read)
            closeQuietly(out.write)
            throw error
        }
        var spec = spec
        spec.stdout = .descriptor(out.write)
        spec.stderr = .descriptor(err.write)
        let pid: pid_t
        do {
            pid = try spawn(spec)
        } catch {
            for fd in [out.read, out.write, err.read, err.write] { closeQuietly(fd) }
            throw error
        }
        closeQuietly(out.write)
        closeQuietly(err.write)
        return (pid, out.read, err.read)
    }

    static func spawn(_ spec: SpawnSpec) throws(ProcessAPIError) -> pid_t {
        for s in spec.arguments + [spec.executable, spec.workingDirectory] where s.utf8.contains(0) {
            throw ProcessAPIError(.invalidArgument, "an argument contains a NUL byte, which a process cannot receive")
        }
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        var rc = posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        rc = rc == 0 ? posix_spawnattr_setpgroup(&attributes, 0) : rc
        var emptySet = sigset_t()
        sigemptyset(&emptySet)
        rc = rc == 0 ? posix_spawnattr_setsigmask(&attributes, &emptySet) : rc
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        // glibc's sigfillset leaves out its two internal signals (32 and 33), which its
        // posix_spawn then sets to SIG_IGN in the child, an ignored disposition that survives
        // exec. Add them by hand (signal n is bit n - 1) so that the child gets SIG_DFL for them
        // too. (The child has its own signal table: this does not touch ours.)
        withUnsafeMutableBytes(of: &allSignals) { raw in
            let words = raw.bindMemory(to: UInt64.self)
            words[0] |= (UInt64(1) << 31) | (UInt64(1) << 32)
        }
        rc = rc == 0 ? posix_spawnattr_setsigdefault(&attributes, &allSignals) : rc
        if rc != 0 {
            throw ProcessAPIError(.spawnFailed, "could not prepare posix_spawn attributes: \(describe(rc))")
        }

        guard let addChdir else {
            throw ProcessAPIError(
                .spawnFailed, "this C library lacks posix_spawn_file_actions_addchdir_np (glibc 2.29 or later is needed)")
        }
        if addChdir(&fileActions, spec.workingDirectory) != 0 {
            throw ProcessAPIError(.spawnFailed, "could not prepare posix_spawn file actions")
        }
        for (target, stdio) in [(Int32(0), spec.stdin), (1, spec.stdout), (2, spec.stderr)] {
            let r: Int32
            switch stdio {
            case .null:
                r = posix_spawn_file_actions_addopen(
                    &fileActions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            case .descriptor(let fd):
                r = posix_spawn_file_actions_adddup2(&fileActions, fd, target)
            case .appendFile(let path):
                r = posix_spawn_file_actions_addopen(
                    &fileActions, target, path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            case .readFile(let path):
                r = posix_spawn_file_actions_addopen(&fileActions, target, path, O_RDONLY, 0)
            }
            if r != 0 {
                throw ProcessAPIError(.spawnFailed, "could not prepare posix_spawn file actions: \(describe(r))")
            }
        }
        if let addClosefrom {
            _ = addClosefrom(&fileActions, 3)
        }

        let environment = spec.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let spawnResult = withCStringArray(spec.arguments) { argv in
            withCStringArray(environment) { envp in
                posix_spawn(&pid, spec.executable, &fileActions, &attributes, argv, envp)
            }
        }
        if spawnResult != 0 {
            throw ProcessAPIError(
                .spawnFailed, "could not start \(spec.executable): \(describe(spawnResult))")
        }
        return pid
    }

    private static func withCStringArray<R>(
        _ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R
    ) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for p in pointers { free(p) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
