// Counts in messages and tables, shared by the commands and the pipeline.

/// "1 image", "3 images": a count and its noun, in the plural when it is not one.
public func counted(_ count: Int, _ noun: String, plural: String? = nil) -> String {
    "\(count) " + (count == 1 ? noun : plural ?? noun + "s")
}
