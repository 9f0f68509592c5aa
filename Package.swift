// swift-tools-version: 6.1
// contid: audit container identifiers for Linux, in user space.
//
// Data flow (Sources/):
//   AuditCodec (records, fields, event assembly)
//     -> ContainerEngine (IDs, process table, registry, records, predicate)
//     -> AuditPipeline (attribution of a trail, output forms, rules, sinks)
//   LinuxAudit (+ CAuditLinux): the only code that talks to the kernel
//   ContidDaemon: wires LinuxAudit sources into the pipeline
//   contid / contidd: thin executables
import PackageDescription

// The live audit path (codec, engine, pipeline, kernel interfaces, daemon) is
// compiled optimized in debug builds too: a debug contidd cannot keep up with a
// fork storm, and the kernel then drops it as its audit daemon (kauditd retry
// queue overflow), so the system tests run against code that is fast enough.
let optimized: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "contid",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "contid", targets: ["contid"]),
        .executable(name: "contidd", targets: ["contidd"]),
        .library(name: "AuditCodec", targets: ["AuditCodec"]),
        .library(name: "ContainerEngine", targets: ["ContainerEngine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.0"),
    ],
    targets: [
        .target(name: "CAuditLinux"),
        .target(name: "AuditCodec", swiftSettings: optimized),
        .target(name: "ContainerEngine", dependencies: ["AuditCodec"], swiftSettings: optimized),
        .target(name: "AuditPipeline", dependencies: ["AuditCodec", "ContainerEngine"], swiftSettings: optimized),
        .target(
            name: "LinuxAudit",
            dependencies: [
                "CAuditLinux", "AuditCodec",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: optimized),
        .target(
            name: "ContidDaemon",
            dependencies: [
                "AuditCodec", "ContainerEngine", "AuditPipeline", "LinuxAudit",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: optimized),
        .executableTarget(
            name: "contid",
            dependencies: [
                "AuditCodec", "ContainerEngine", "AuditPipeline", "LinuxAudit", "ContidDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "contidd",
            dependencies: [
                "ContidDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "contid-bench",
            dependencies: ["AuditCodec", "ContainerEngine", "AuditPipeline"],
            path: "Benchmarks/Sources/contid-bench"),
        .testTarget(
            name: "AuditCodecTests",
            dependencies: [
                "AuditCodec",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]),
        .testTarget(
            name: "ContainerEngineTests",
            dependencies: [
                "ContainerEngine",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]),
        .testTarget(
            name: "AuditPipelineTests",
            dependencies: ["AuditCodec", "ContainerEngine", "AuditPipeline"]),
        .testTarget(
            name: "SystemTests",
            dependencies: ["AuditCodec", "ContainerEngine", "AuditPipeline", "LinuxAudit"]),
    ]
)
