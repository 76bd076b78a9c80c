// swift-tools-version: 6.1
import PackageDescription

// Library-level microbenchmarks of PyKernel (ordo-one/benchmark).
//
//   cd Benchmarks && swift build                      # what CI does (builds, never runs)
//   cd Benchmarks && swift package benchmark          # runs them
//   cd Benchmarks && swift build -c release --product JSONPaths && .build/release/JSONPaths
//                                                     # own JSON parser vs Foundation's
//
// The side-by-side comparison with Jupyter and a process-per-context worker is `bash Benchmarks/run`.
let package = Package(
    name: "PyKernelBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "PyKernel", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "KernelBenchmarks",
            dependencies: [
                .product(name: "PyKernel", package: "PyKernel"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/KernelBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // A plain executable (medians and ratios in a Markdown table): the project's JSON path
        // next to JSONSerialization and JSONDecoder/JSONEncoder on the protocol's messages.
        .executableTarget(
            name: "JSONPaths",
            dependencies: [.product(name: "JSONRPC", package: "PyKernel")],
            path: "Benchmarks/JSONPaths"
        ),
    ]
)
