import Foundation

/// Diagnostics of the server, written to a descriptor (the original standard error), never to
/// the protocol stream.
public struct ServerLog: Sendable {
    /// How much is logged; each level includes the ones above it.
    public enum Level: Int, Sendable, Comparable, CaseIterable {
        case error, warning, info, debug
        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }
        public init?(name: String) {
            guard let level = Self.allCases.first(where: { "\($0)" == name }) else { return nil }
            self = level
        }
    }

    public let level: Level
    private let descriptor: Int32

    public init(level: Level, descriptor: Int32) {
        self.level = level
        self.descriptor = descriptor
    }

    public func error(_ message: @autoclosure () -> String) { write(.error, message) }
    public func warning(_ message: @autoclosure () -> String) { write(.warning, message) }
    public func info(_ message: @autoclosure () -> String) { write(.info, message) }
    public func debug(_ message: @autoclosure () -> String) { write(.debug, message) }

    private func write(_ messageLevel: Level, _ message: () -> String) {
        guard messageLevel <= level else { return }
        let line = "pykernel[\(messageLevel)]: \(message())\n"
        _ = line.utf8CString.withUnsafeBufferPointer { Foundation.write(descriptor, $0.baseAddress, $0.count - 1) }
    }
}
