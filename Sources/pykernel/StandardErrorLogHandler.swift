import Foundation
import Logging

/// Writes log lines `pykernel[LEVEL]: message` (then ` key=value` metadata) to a descriptor, the
/// server's own standard error.
///
/// Not swift-log's `StreamLogHandler`: that one writes to the C `stderr` stream (descriptor 2,
/// which the engine redirects into the output capture of runs) in another format (timestamp and
/// label first).
struct StandardErrorLogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    private let descriptor: Int32

    /// A handler for `descriptor` that logs `level` and more severe.
    init(descriptor: Int32, level: Logger.Level) {
        self.descriptor = descriptor
        self.logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var line = "pykernel[\(event.level)]: \(event.message)"
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        for key in merged.keys.sorted() { line += " \(key)=\(merged[key]!)" }
        line += "\n"
        // One write(2) per line, so lines of concurrent loggers never interleave.
        var bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if written > 0 { offset += written } else if written < 0, errno == EINTR { continue } else { return }
        }
    }
}
