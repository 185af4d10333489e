import ArgumentParser
import Datasets
import Foundation

/// `wsss data`: inspect datasets.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Inspect datasets.", subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Read every image, label and annotation of a split; print counts, class frequencies and every problem found.",
            discussion: "Exits with status 1 when any problem is found (each names its file).")

        @OptionGroup var data: DatasetOptions

        @Flag(help: "Print one JSON object instead of the table.")
        var json = false

        func run() throws {
            // A label folder given by --labels is what `wsss train` will read: every image needs its PNG there.
            let report = try data.dataset().check(requireLabels: data.labels != nil)
            if json {
                // snake_case keys and plain slashes, like every other --json output.
                let encoder = JSONEncoder()
                encoder.keyEncodingStrategy = .convertToSnakeCase
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                let encoded = try encoder.encode(report)
                print(String(decoding: encoded, as: UTF8.self))
            } else {
                print(report.text)
            }
            if !report.problems.isEmpty { throw ExitCode(1) }
        }
    }
}
