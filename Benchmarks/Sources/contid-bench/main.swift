// contid-bench: benchmarks, one subcommand each.
#if canImport(Glibc)
import Glibc
#endif

let args = CommandLine.arguments.dropFirst()
switch args.first {
case "engine":
    guard let options = EngineBench.parse(args.dropFirst()) else {
        print("usage: contid-bench engine [--processes N] [--events N] [--containers N] [--corpus LOG]")
        exit(2)
    }
    EngineBench.run(options)
case "live":
    // contid-bench live [CORPUS] [RECORDS]: allocations per event, before and after the pipeline.
    let rest = Array(args.dropFirst())
    LiveBench.run(corpus: rest.first ?? "../shared/corpus/captured-linux-6.18-raw.log",
                  records: rest.count > 1 ? Int(rest[1]) ?? 200_000 : 200_000)
default:
    print("usage: contid-bench engine [--processes N] [--events N] [--containers N] [--corpus LOG]")
    print("       contid-bench live [CORPUS] [RECORDS]")
    exit(2)
}
