// Library-level benchmarks of the PyKernel engine (no protocol, no process boundary).
//
//   cd Benchmarks && swift package benchmark            # every row
//   cd Benchmarks && swift package benchmark --filter "createContext.*"
//
// CPython is initialized once per process, so a process can start only one `KernelManager`:
// every benchmark of this executable shares the one below.

import Benchmark
import Foundation
import PyKernel

/// The one manager of this process, started on first use.
let sharedManager = Task<KernelManager, any Error> {
    try await KernelManager.start()
}

/// A context that has already run once (its namespace exists), for round-trip rows.
let warmContext = Task<ContextID, any Error> {
    let manager = try await sharedManager.value
    let context = try manager.createContext()
    _ = try await manager.run("pass", in: context.id).result()
    return context.id
}

/// This process's resident and private (unique) bytes, from /proc/self/smaps_rollup.
func memoryFootprint() -> (rss: Int, uss: Int) {
    guard let text = try? String(contentsOfFile: "/proc/self/smaps_rollup", encoding: .utf8) else { return (0, 0) }
    var rss = 0
    var uss = 0
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 2, let kilobytes = Int(fields[1]) else { continue }
        switch fields[0] {
        case "Rss:": rss = kilobytes * 1024
        case "Private_Clean:", "Private_Dirty:": uss += kilobytes * 1024
        default: break
        }
    }
    return (rss, uss)
}

let rssPerContext = BenchmarkMetric.custom("RSS bytes per context", polarity: .prefersSmaller, useScalingFactor: false)
let ussPerContext = BenchmarkMetric.custom("USS bytes per context", polarity: .prefersSmaller, useScalingFactor: false)

/// Contexts per iteration of the memory rows.
let contextsPerMemoryIteration = 1_000

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 10,
        maxDuration: .seconds(3),
        maxIterations: 100_000
    )

    // Target (issue 5): median ≤ 20 µs.
    Benchmark("createContext", configuration: .init(scalingFactor: .kilo)) { benchmark in
        let manager = try await sharedManager.value
        var created: [ContextID] = []
        created.reserveCapacity(benchmark.scaledIterations.count)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            created.append(try manager.createContext().id)
        }
        benchmark.stopMeasurement()
        for id in created { try manager.deleteContext(id) }
    }

    Benchmark("run pass (round trip, warm context)") { benchmark in
        let manager = try await sharedManager.value
        let context = try await warmContext.value
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try await manager.run("pass", in: context).result())
        }
    }

    Benchmark("run print('hi') (round trip, warm context)") { benchmark in
        let manager = try await sharedManager.value
        let context = try await warmContext.value
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try await manager.run("print('hi')", in: context).result())
        }
    }

    Benchmark("createContext + first run of pass") { benchmark in
        let manager = try await sharedManager.value
        benchmark.startMeasurement()
        let context = try manager.createContext()
        blackHole(try await manager.run("pass", in: context.id).result())
        benchmark.stopMeasurement()
        try manager.deleteContext(context.id)
    }

    Benchmark("createContext + first result of json.dumps") { benchmark in
        let manager = try await sharedManager.value
        benchmark.startMeasurement()
        let context = try manager.createContext()
        for try await event in try manager.run("import json; print(json.dumps({\"a\": 1}))", in: context.id) {
            if case .output = event { break }  // the output has arrived
        }
        benchmark.stopMeasurement()
        try manager.deleteContext(context.id)
    }

    // Target (issue 5): ≤ 16 KB per empty context. Contexts stay alive across iterations so every
    // iteration measures fresh memory rather than memory freed by an earlier one. mallocBytesCount
    // is per iteration, i.e. for \(contextsPerMemoryIteration) contexts.
    let memoryConfiguration = Benchmark.Configuration(
        // (.throughput too: the JMH export, which compare.py --library reads, requires it.)
        metrics: [.wallClock, .throughput, .mallocCountTotal, rssPerContext, ussPerContext, .mallocBytesCount],
        warmupIterations: 1, maxDuration: .seconds(10), maxIterations: 5)

    Benchmark("memory per empty context (\(contextsPerMemoryIteration) contexts)", configuration: memoryConfiguration) { benchmark in
        let manager = try await sharedManager.value
        let before = memoryFootprint()
        var contexts: [ContextInfo] = []
        contexts.reserveCapacity(contextsPerMemoryIteration)
        for _ in 0..<contextsPerMemoryIteration {
            contexts.append(try manager.createContext())
        }
        let after = memoryFootprint()
        benchmark.stopMeasurement()
        benchmark.measurement(rssPerContext, (after.rss - before.rss) / contextsPerMemoryIteration)
        benchmark.measurement(ussPerContext, (after.uss - before.uss) / contextsPerMemoryIteration)
        blackHole(contexts)
    }

    Benchmark("memory per context after one run (\(contextsPerMemoryIteration) contexts)", configuration: memoryConfiguration) { benchmark in
        let manager = try await sharedManager.value
        let before = memoryFootprint()
        for _ in 0..<contextsPerMemoryIteration {
            let context = try manager.createContext()
            blackHole(try await manager.run("x = 1", in: context.id).result())
        }
        let after = memoryFootprint()
        benchmark.stopMeasurement()
        benchmark.measurement(rssPerContext, (after.rss - before.rss) / contextsPerMemoryIteration)
        benchmark.measurement(ussPerContext, (after.uss - before.uss) / contextsPerMemoryIteration)
    }
}
