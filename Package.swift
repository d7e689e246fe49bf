// swift-tools-version: 6.1
import PackageDescription

// The numerics (ALS, ridge updates, top-k scans) are optimized in debug builds too: unoptimized,
// they run 10-50x slower, and the test suite's ALS fits dominated its wall time.
let optimizedInDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "osprey",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "osprey", targets: ["osprey"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // `--store postgres://…`: the shared store of several nodes.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // Tests only: an HTTPS client that checks the server's certificate.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        .target(name: "COspreyKernels"),
        .target(
            name: "OspreyMath",
            dependencies: ["COspreyKernels", .product(name: "RealModule", package: "swift-numerics")],
            swiftSettings: optimizedInDebug
        ),
        .target(
            name: "OspreyModel",
            dependencies: ["OspreyMath", .product(name: "RealModule", package: "swift-numerics")],
            swiftSettings: optimizedInDebug
        ),
        // Research code (the bandit simulator, the online-versus-offline experiment and its
        // item-side updates): used by the CLI, never by the serving modules.
        .target(
            name: "OspreyLab",
            dependencies: ["OspreyMath", "OspreyModel", .product(name: "RealModule", package: "swift-numerics")]
        ),
        .target(
            name: "OspreyStorage",
            dependencies: [
                "OspreyMath", "OspreyModel",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "OspreyEngine",
            dependencies: [
                "OspreyMath", "OspreyModel", "OspreyStorage",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "OspreyServer",
            dependencies: [
                "OspreyEngine", "OspreyModel", "OspreyStorage",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // The fast path's place in the HTTP/1 pipeline (FastPathChannel), and its loops.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                // `serve --tls-cert/--tls-key`: the TLS handshake in front of either child channel.
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            resources: [.copy("Resources/openapi.yaml")]
        ),
        .executableTarget(
            name: "osprey",
            dependencies: [
                "OspreyMath", "OspreyModel", "OspreyLab", "OspreyStorage", "OspreyEngine", "OspreyServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                // The listening socket's errors (a port in use).
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(name: "osprey-bench", dependencies: [
            "OspreyMath", "OspreyModel", "OspreyEngine", "OspreyStorage", .product(name: "Logging", package: "swift-log"),
            .product(name: "MetricsTestKit", package: "swift-metrics"),
        ]),
        .target(
            name: "OspreyTestSupport",
            dependencies: [
                "OspreyMath", "OspreyModel", "OspreyStorage", "OspreyEngine", .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "OspreyMathTests",
            dependencies: ["OspreyMath", .product(name: "Numerics", package: "swift-numerics")]
        ),
        .testTarget(name: "OspreyModelTests", dependencies: ["OspreyModel", "OspreyMath"]),
        .testTarget(name: "OspreyLabTests", dependencies: ["OspreyLab", "OspreyModel", "OspreyMath"]),
        .testTarget(
            name: "OspreyStorageTests",
            dependencies: [
                "OspreyStorage", "OspreyMath", "OspreyModel", "OspreyTestSupport", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        .testTarget(
            name: "OspreyEngineTests",
            dependencies: [
                "OspreyEngine", "OspreyMath", "OspreyModel", "OspreyStorage", "OspreyTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "OspreyServerTests",
            dependencies: [
                "OspreyServer", "OspreyEngine", "OspreyModel", "OspreyStorage", "OspreyTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
    ]
)
