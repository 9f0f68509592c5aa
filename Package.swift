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
        .target(name: "AuditCodec"),
        .target(name: "ContainerEngine", dependencies: ["AuditCodec"]),
        .target(name: "AuditPipeline", dependencies: ["AuditCodec", "ContainerEngine"]),
        .target(
            name: "LinuxAudit",
            dependencies: [
                "CAuditLinux", "AuditCodec",
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
        .target(
            name: "ContidDaemon",
            dependencies: [
                "AuditCodec", "ContainerEngine", "AuditPipeline", "LinuxAudit",
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
        .executableTarget(
            name: "contid",
            dependencies: [
                "AuditCodec", "ContainerEngine", "AuditPipeline", "LinuxAudit", "ContidDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "contidd",
            dependencies: [
                "ContidDaemon", "AuditPipeline", "LinuxAudit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .target(name: "CMallocCounter", path: "Benchmarks/Sources/CMallocCounter"),
        .executableTarget(
            name: "contid-bench",
            dependencies: ["AuditCodec", "ContainerEngine", "AuditPipeline", "CMallocCounter"],
            path: "Benchmarks/Sources/contid-bench"),
        .target(
            name: "TestSupport",
            dependencies: ["LinuxAudit"],
            path: "Tests/TestSupport"),
        .testTarget(
            name: "ContidDaemonTests",
            dependencies: ["AuditCodec", "ContainerEngine", "AuditPipeline", "LinuxAudit", "ContidDaemon", "TestSupport"]),
        .testTarget(
            name: "AuditCodecTests",
            dependencies: [
                "TestSupport",
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
            dependencies: ["TestSupport", "AuditCodec", "ContainerEngine", "AuditPipeline"]),
        .testTarget(
            name: "SystemTests",
            dependencies: ["AuditCodec", "ContainerEngine", "AuditPipeline", "LinuxAudit"]),
    ]
)
