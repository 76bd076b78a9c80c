import Foundation

/// A request argument that cannot be used: which one (`field`, the wire name), and why.
/// Each module maps it to its own error type (`KernelError`, `ProcessAPIError`).
package struct InvalidInput: Error, Sendable, Hashable {
    /// Why the value is refused: `invalid_cwd` or `invalid_argument`.
    package enum Reason: String, Sendable {
        case invalidCwd = "invalid_cwd"
        case invalidArgument = "invalid_argument"
    }
    package let reason: Reason
    /// The argument's wire name (`cwd`, `env`, `timeout`).
    package let field: String
    /// A sentence a person can act on.
    package let message: String
}

/// Validation of the arguments every module takes: working directories, environments, timeouts.
package enum InputValidation {
    /// The absolute, standardized form of an existing directory; `path` may be relative to `base`.
    package static func workingDirectory(_ path: String, relativeTo base: String, field: String = "cwd") throws(InvalidInput) -> String {
        guard !path.isEmpty, !path.contains("\0") else {
            throw InvalidInput(reason: .invalidCwd, field: field, message: "The working directory must be a non-empty path without NUL characters.")
        }
        let absolute = path.hasPrefix("/") ? path : (base as NSString).appendingPathComponent(path)
        let standardized = (absolute as NSString).standardizingPath
        // The start directory's own bytes where the path has its text (``StartDirectory``).
        var status = stat()
        guard stat(StartDirectory.fileSystemPath(standardized), &status) == 0 else {
            throw InvalidInput(reason: .invalidCwd, field: field, message: "The working directory '\(path)' does not exist.")
        }
        guard status.st_mode & S_IFMT == S_IFDIR else {
            throw InvalidInput(reason: .invalidCwd, field: field, message: "The working directory '\(path)' is not a directory.")
        }
        return standardized
    }

    /// Checks that every name is non-empty without `=` or NUL and every value is without NUL.
    package static func environment(_ environment: [String: String], field: String = "env") throws(InvalidInput) {
        for (name, value) in environment {
            if name.isEmpty || name.contains("=") || name.contains("\0") {
                throw InvalidInput(reason: .invalidArgument, field: field, message: "Environment variable names must be non-empty and contain neither '=' nor NUL: '\(name)'.")
            }
            if value.contains("\0") {
                throw InvalidInput(reason: .invalidArgument, field: field, message: "The value of environment variable '\(name)' contains a NUL character.")
            }
        }
    }

    /// A timeout given on the wire in seconds (fractions allowed): `0` means none, and so does
    /// anything past about 30 years (which would overflow a `Duration`), infinity included (a
    /// number past `Double`'s range on the wire). A positive value below a `Duration`'s resolution
    /// (1e-18 s) is its smallest positive value, not zero.
    package static func timeout(seconds: Double, field: String = "timeout") throws(InvalidInput) -> Duration? {
        guard seconds >= 0 else {  // NaN too
            throw InvalidInput(reason: .invalidArgument, field: field, message: "\(field) must be a number of seconds >= 0 (0 means no timeout).")
        }
        return seconds == 0 || seconds > 1e9 ? nil : max(.seconds(seconds), .smallestPositive)
    }
}

extension Duration {
    /// The shortest positive duration: one attosecond.
    package static let smallestPositive = Duration(secondsComponent: 0, attosecondsComponent: 1)

    /// The duration in seconds, as the wire carries durations (fractions allowed).
    package var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
