// swift-tools-version: 6.2
import PackageDescription

/// Strict settings applied to every Swift target.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// The `pykernel` program links CPython as `/usr/bin/python3.11` does: Debian's static build
/// (`libpython3.11.a`: not position-independent; Python code ~15 % faster than with the shared
/// library, about 2× when this host is in its slow mode) into an executable that is not
/// position-independent and exports the C API to extension modules. `scripts/setup` makes one
/// relocatable object of that archive (`ld -r`: members of an archive would be hidden by the static
/// Swift runtime's `--exclude-libs ALL`), its code in one section the engine recognises CPython's
/// signal handlers by. The Swift runtime and Foundation are linked statically too (with the
/// archives and libraries Foundation's own need): a non-PIE executable bound to the shared ones
/// gets glibc's "direct reference to protected function" warnings. Libraries and tests link the
/// shared `libpython3.11.so` (`CPythonSharedLibrary`). docs/architecture.md, "Linking CPython".
let staticPythonObject = "\(Context.packageDirectory)/.build/python-static/libpython3.11.o"
let staticPythonLinking: [LinkerSetting] = [
    .unsafeFlags(
        [
            "-use-ld=lld", "-static-stdlib", "-Xlinker", "-no-pie", staticPythonObject, "-lz", "-lexpat",
            "-Xlinker", "--start-group",
            "-lFoundationNetworking", "-lFoundationInternationalization", "-lFoundationEssentials", "-lFoundation",
            "-lCoreFoundation", "-l_CFURLSessionInterface", "-l_FoundationICU", "-l_FoundationCShims", "-l_FoundationCollections",
            "-Xlinker", "--end-group", "-lcurl", "-lstdc++",
        ], .when(platforms: [.linux])),
]

let package = Package(
    name: "PyKernel",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "PyKernel", targets: ["PyKernel", "CPythonSharedLibrary"]),
        .library(name: "PyKernelProcess", targets: ["PyKernelProcess"]),
        // Both kinds of context through one API (`KernelContexts`); process contexts need the `pykernel` executable.
        .library(name: "PyKernelIsolation", targets: ["PyKernelIsolation", "CPythonSharedLibrary"]),
        // JSON values and JSON-RPC framing, also for the benchmark of Benchmarks/ (JSONPaths).
        .library(name: "JSONRPC", targets: ["JSONRPC"]),
        .executable(name: "pykernel", targets: ["pykernel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.0"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", from: "0.12.1"),
    ],
    targets: [
        // The C boundary: CPython's headers (via pkg-config python3: no library, see
        // `staticPythonLinking`) and a shim header with static inline wrappers for the macros
        // Swift cannot import.
        .systemLibrary(
            name: "CPython",
            pkgConfig: "python3",
            providers: [.apt(["python3-dev", "pkg-config"])]
        ),
        // Links the shared `libpython3.11.so`, for the library products and the tests (the
        // `pykernel` program has CPython's static build instead).
        .target(name: "CPythonSharedLibrary", linkerSettings: [.linkedLibrary("python3.11")]),
        // Small pieces the engine and the process API share (package access only): the output
        // cap, UTF-8 boundaries, the condition lock, argument validation.
        .target(name: "PyKernelSupport", swiftSettings: strictSettings),
        // The one Swift layer that calls CPython: GIL discipline and reference ownership.
        .target(name: "EmbeddedPython", dependencies: ["CPython", "PyKernelSupport"], swiftSettings: strictSettings),
        // Compiles python/runtime/*.py into the binary.
        .executableTarget(name: "EmbedPythonSources", swiftSettings: strictSettings),
        .plugin(
            name: "EmbedPythonPlugin",
            capability: .buildTool(),
            dependencies: ["EmbedPythonSources"]
        ),
        // The engine: contexts, runs, output capture, error records.
        .target(
            name: "PyKernel",
            dependencies: ["EmbeddedPython", "PyKernelSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings,
            plugins: ["EmbedPythonPlugin"]
        ),
        // JSON values and JSON-RPC 2.0 framing, independent of the engine.
        .target(name: "JSONRPC", dependencies: ["PyKernelSupport"], swiftSettings: strictSettings),
        // The process API's C boundary: pipe2, pidfd_open and pidfd_send_signal.
        .target(name: "_PyKernelProcessShims"),
        // The `pykernel` program's own C `_exit`, which a process context's worker lingers in (only
        // the executable defines it: a host of the libraries keeps glibc's).
        .target(name: "_PyKernelRawExit"),
        // Stateless code runs, shell commands and sessions of background commands.
        .target(
            name: "PyKernelProcess",
            dependencies: [
                "PyKernelSupport",
                "_PyKernelProcessShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ],
            swiftSettings: strictSettings
        ),
        // Process contexts: contexts in worker processes of their own, and their warm pool.
        .target(
            name: "PyKernelIsolation",
            dependencies: [
                "PyKernel",
                "JSONRPC", "PyKernelSupport", "_PyKernelProcessShims",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // `pykernel serve`: the JSON-RPC front of the engine and the process API.
        .target(
            name: "PyKernelServer",
            dependencies: [
                "PyKernel", "PyKernelProcess", "JSONRPC", "PyKernelSupport",
                "PyKernelIsolation",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings,
            // The chart module, for the separate python3 of process.code_run.
            plugins: ["EmbedPythonPlugin"]
        ),
        // `pykernel mcp`: the same engine and process API as a Model Context Protocol server.
        .target(
            name: "PyKernelMCP",
            dependencies: [
                "PyKernel", "PyKernelProcess", "PyKernelServer", "PyKernelSupport", "JSONRPC",
                "PyKernelIsolation",
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "pykernel",
            dependencies: [
                "PyKernel", "PyKernelServer", "PyKernelMCP", "PyKernelIsolation", "PyKernelSupport", "_PyKernelRawExit",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings,
            linkerSettings: staticPythonLinking
        ),
        .testTarget(
            name: "PyKernelTests", dependencies: ["PyKernel", "CPythonSharedLibrary", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings),
        .testTarget(name: "PyKernelSupportTests", dependencies: ["PyKernelSupport"], swiftSettings: strictSettings),
        .testTarget(name: "JSONRPCTests", dependencies: ["JSONRPC"], swiftSettings: strictSettings),
        .testTarget(
            name: "PyKernelServerTests",
            dependencies: ["PyKernelServer", "PyKernel", "PyKernelProcess", "JSONRPC", "PyKernelTests", "CPythonSharedLibrary",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PyKernelProcessTests", dependencies: ["PyKernelProcess"], swiftSettings: strictSettings),
        .testTarget(
            name: "PyKernelIsolationTests", dependencies: ["PyKernelIsolation", "JSONRPC", "PyKernelSupport", .product(name: "Logging", package: "swift-log"),
                                                            "PyKernel", "PyKernelTests", "CPythonSharedLibrary"],
            swiftSettings: strictSettings),
    ]
)
