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
default:
    print("usage: contid-bench engine [--processes N] [--events N] [--containers N] [--corpus LOG]")
    exit(2)
}
