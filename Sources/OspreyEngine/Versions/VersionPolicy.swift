import OspreyStorage

/// Which versions a model keeps: a pure function of the catalogue's records, so it is tested
/// without I/O (as TensorFlow Serving's aspired-version policies are). The manager asks it after
/// every install and deletes what it names from the version and snapshot stores.
public enum VersionPolicy {
    /// The versions to delete so that at most the newest `keep` remain (at least one), besides
    /// those never deleted: the serving version, its parent (the rollback target a retrain left)
    /// and a competing challenger. Oldest first. O(versions · log versions).
    public static func prunable(_ versions: [VersionRecord], serving: Int, challenger: Int?, keep: Int) -> [Int] {
        let parent = versions.first { $0.number == serving }?.parent
        let newest = Set(versions.map(\.number).sorted(by: >).prefix(max(1, keep)))
        return versions.map(\.number).sorted().filter {
            !newest.contains($0) && $0 != serving && $0 != parent && $0 != challenger
        }
    }
}
