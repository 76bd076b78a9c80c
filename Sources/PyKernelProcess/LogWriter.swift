import Glibc

/// Appends a command's output to its three log files: `stdout.log`, `stderr.log`, and
/// `output.log` (both, in arrival order). Used by one pump thread.
final class LogWriter: Sendable {
    let stdoutFD: Int32
    let stderrFD: Int32
    let outputFD: Int32

    init(directory: String) throws(ProcessAPIError) {
        var fds: [Int32] = []
        for name in ["stdout.log", "stderr.log", "output.log"] {
            let fd = Posix.open(directory + "/" + name, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o600)
            if fd < 0 {
                let reason = Posix.describe(errno)
                for f in fds { Posix.closeQuietly(f) }
                throw ProcessAPIError(.spawnFailed, "could not create the log file \(directory)/\(name): \(reason)")
            }
            fds.append(fd)
        }
        stdoutFD = fds[0]
        stderrFD = fds[1]
        outputFD = fds[2]
    }

    func write(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer) {
        Posix.writeAll(stream == .stdout ? stdoutFD : stderrFD, bytes)
        Posix.writeAll(outputFD, bytes)
    }

    deinit {
        Posix.closeQuietly(stdoutFD)
        Posix.closeQuietly(stderrFD)
        Posix.closeQuietly(outputFD)
    }
}
