// swift-tools-version:6.0
// A user's package that depends on WSSS by path and plugs its own proposal source into the
// pseudo-label stage. Built and run by scripts/test (CI).
import PackageDescription

let package = Package(
    name: "CustomProposals",
    dependencies: [.package(name: "WSSS", path: "../..")],
    targets: [
        .executableTarget(name: "CustomProposals", dependencies: [.product(name: "WSSS", package: "WSSS")]),
        // README.md's Swift blocks (scripts/readme-snippets writes them here): compiled by CI, not run.
        .executableTarget(name: "ReadmeSnippets", dependencies: [.product(name: "WSSS", package: "WSSS")]),
    ],
    swiftLanguageModes: [.v5]
)
