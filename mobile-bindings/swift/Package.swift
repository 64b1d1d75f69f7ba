// swift-tools-version:5.9
// The vault for iOS apps: the Rust library as an XCFramework (static libraries for devices and
// the simulator, with the C header and module map of `vault_mobileFFI`), the uniffi-generated
// Swift, and the Secure Enclave key wrapper. scripts/package-ios.sh lays this package out in
// target/ios/VaultMobile (generating vault_mobile.swift and building the XCFramework on a Mac).
import PackageDescription

let package = Package(
    name: "VaultMobile",
    platforms: [.iOS(.v15)],
    products: [
        .library(name: "VaultMobile", targets: ["VaultMobile"]),
    ],
    targets: [
        .binaryTarget(name: "vault_mobileFFI", path: "vault_mobileFFI.xcframework"),
        .target(
            name: "VaultMobile",
            dependencies: ["vault_mobileFFI"],
            path: "Sources/VaultMobile",
            sources: [
                "vault_mobile.swift",
                "SecureEnclaveWrapper.swift",
            ],
            linkerSettings: [
                .linkedFramework("Security"),
                .linkedFramework("CoreFoundation"),
                .linkedFramework("LocalAuthentication"),
            ]
        ),
    ]
)
