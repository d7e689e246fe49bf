import Foundation
import OspreyMath
import OspreyModel
import OspreyStorage
import OspreyTestSupport
import Testing

/// The storage protocols' documented semantics, checked on every implementation: the SQLite
/// stores (what users run) and their in-memory twins (what the engine's tests run on) must
/// answer alike, so a test passing in memory says something about SQLite too.
struct StoreContractTests {
    enum Backend: String, CaseIterable, CustomTestStringConvertible {
        case memory, sqlite, postgres
        var testDescription: String { rawValue }

        /// Every backend this machine can run: `postgres` needs PostgreSQL's server
        /// (``PostgresTestServer``).
        static var available: [Backend] { allCases.filter { $0 != .postgres || PostgresTestServer.unavailable == nil } }
    }

    /// Fresh, empty stores of a backend; the directory (SQLite) is removed by `body`'s end.
    func withStores(_ backend: Backend, _ body: (Stores, _ reopen: () throws -> Stores) throws -> Void) throws {
        switch backend {
        case .memory:
            let stores = Stores.inMemory()
            try body(stores) { stores }
        case .sqlite:
            let directory = NSTemporaryDirectory() + "osprey-contract-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try body(try SQLiteStores(directory: directory, access: .unlocked).stores) { try SQLiteStores(directory: directory, access: .unlocked).stores }
        case .postgres:
            let url = try PostgresTestServer.freshDatabase()
            func open() throws -> Stores { try PostgresStores(url: url, access: .unlocked).stores }
            try body(try open()) { try open() }
        }
    }

    static func version(_ model: String, _ number: Int, parent: Int? = nil) -> ModelVersion {
        let d = 3, stride = VectorKernels.paddedStride(d)
        var table = [Float](repeating: 0, count: 2 * stride)
        for k in 0..<d { table[k] = Float(k + 1); table[stride + k] = Float(number) }
        let metadata = TrainingMetadata(factors: d, lambda: 1, scaledLambda: false, lambdaSelection: "given", iterations: 1,
                                        seed: 1, trainingRMSE: 0.5, validationRMSE: nil, ratings: 2, durationSeconds: 0)
        return ModelVersion(model: model, number: number, createdAt: Date(timeIntervalSince1970: 1_000),
                            features: MaterializedFeatures(dimension: d, ids: ["i1", "i2"], table: table, offsets: [3, 4]),
                            lambda: 1, prior: [0.1, 0.2, 0.3], metadata: metadata, parent: parent)
    }

    static func weights(_ label: Float, observations: Int = 1) -> UserWeights {
        var ridge = RidgeState(prior: [0, 0, 0], lambda: 1)
        _ = ridge.update(features: padded([1, Float(observations), 0.5]), target: label)
        return UserWeights(ridge: ridge, observations: observations, runningLoss: Double(label), bootstrapped: false)
    }

    /// An observation whose observation id the model's log holds is not appended again: nil in
    /// its place, in the same append or a later one, across a reopen; other models keep their own ids.
    @Test(arguments: Backend.available)
    func theLogSkipsAnObservationIdItHolds(_ backend: Backend) throws {
        try withStores(backend) { s, reopen in
            func o(_ model: String, _ id: String?, _ label: Float) -> Observation {
                Observation(model: model, uid: "u", item: "i", label: label, time: 1, observationId: id)
            }
            let first = try s.log.append([o("a", "x", 1), o("a", "x", 2), o("a", nil, 3), o("a", nil, 4), o("b", "x", 5)])
            #expect(first[0] != nil && first[1] == nil && first[2] != nil && first[3] != nil && first[4] != nil)
            let again = try reopen().log.append([o("a", "x", 6), o("a", "y", 7)])
            #expect(again[0] == nil && again[1] != nil)
            #expect(try s.log.observationCount(model: "a") == 4 && s.log.observationCount(model: "b") == 1)
            var labels: [Float] = []
            try reopen().log.forEachObservation(model: "a", after: 0) { labels.append($0.observation.label) }
            #expect(labels == [1, 3, 4, 7], "the retries were not logged")
            // An erased user's ids go with their observations (deleted rows and the newest,
            // blanked one alike).
            _ = try s.log.deleteUser(model: "a", uid: "u", through: .max)
            #expect(try s.log.append([o("a", "x", 8), o("a", "y", 9)]).allSatisfy { $0 != nil })
        }
    }

    /// A fenced append commits only while its node holds every bucket; the SQLite log, one
    /// process's, has no fence.
    @Test(arguments: Backend.available)
    func aFencedAppendCommitsOnlyWhileItsNodeHoldsTheBuckets(_ backend: Backend) throws {
        try withStores(backend) { s, reopen in
            let o = Observation(model: "m", uid: "u", item: "i", label: 1, time: 0)
            if backend == .sqlite {
                #expect(throws: StorageError.self) { try s.log.claimBuckets([1], node: "a") }
                #expect(throws: StorageError.self) { _ = try s.log.append([o], fence: AppendFence(node: "a", buckets: [1])) }
                return
            }
            try s.log.claimBuckets([1, 2, 3], node: "a")
            #expect(try s.log.append([o, o], fence: AppendFence(node: "a", buckets: [3, 1])) == [1, 2])
            try s.log.claimBuckets([3], node: "b")
            #expect {
                _ = try s.log.append([o], fence: AppendFence(node: "a", buckets: [1, 3]))
            } throws: { ($0 as? StorageError)?.code == .conflict && "\($0)".contains("3") }
            #expect {
                _ = try s.log.append([o], fence: AppendFence(node: "a", buckets: [4]))
            } throws: { ($0 as? StorageError)?.code == .conflict }
            #expect(try reopen().log.lastSequence() == 2 && reopen().log.observationCount(model: "m") == 2, "nothing appended")
            #expect(try s.log.append([o], fence: AppendFence(node: "b", buckets: [3])) == [3])
            #expect(try s.log.append([o]) == [4], "an unfenced append (a lone process) is not checked")
        }
    }

    @Test(arguments: Backend.available)
    func theLogKeepsCommitOrderPerModel(_ backend: Backend) throws {
        try withStores(backend) { s, reopen in
            #expect(try s.log.lastSequence() == 0)
            let a = try s.log.append((0..<5).map { Observation(model: "a", uid: "u\($0 % 2)", item: "i\($0)", label: Float($0), time: 1) })
                .compactMap { $0 }
            let b = try s.log.append([Observation(model: "b", uid: "u0", item: "x", label: 1, time: 2, eventId: "e1"),
                                      Observation(model: "b", uid: "u0", item: "y", label: 2, time: 3, eventId: "e1")]).compactMap { $0 }
            #expect(a == a.sorted() && Set(a).count == 5 && b[0] > a[4] && b[1] > b[0], "increasing across commits and models")
            #expect(try s.log.append([]).isEmpty)
            let log = try reopen().log
            #expect(try log.lastSequence() == b[1])
            var seen: [LoggedObservation] = []
            try log.forEachObservation(model: "a", after: a[1]) { seen.append($0) }
            #expect(seen.map(\.seq) == Array(a[2...]) && seen.map(\.observation.item) == ["i2", "i3", "i4"])
            #expect(try log.observations(model: "a", after: 0, limit: 2).map(\.seq) == Array(a[0..<2]))
            #expect(try log.observations(model: "a", after: a[3], limit: 10).map(\.seq) == [a[4]])
            var user: [Int64] = []
            try log.forEachObservation(model: "a", uid: "u0", in: a[1]..<a[4]) { user.append($0.seq) }
            #expect(user == [a[2]], "the range is half-open and per user")
            #expect(try log.observationCount(model: "a") == 5 && log.observationCount(model: "c") == 0)
            #expect(try log.feedback(model: "b") == ["e1": DecisionFeedback(item: "x", label: 1, seq: b[0])], "the first feedback")
            #expect(try log.feedback(model: "a").isEmpty)
        }
    }

    @Test(arguments: Backend.available)
    func theCatalogueServesOneVersionAtATime(_ backend: Backend) throws {
        try withStores(backend) { s, reopen in
            let ratings = [Rating(uid: "u1", item: "i1", label: 4, timestamp: 1), Rating(uid: "u1", item: "i2", label: 2, timestamp: 2),
                           Rating(uid: "u2", item: "i1", label: 5, timestamp: 3)]
            try s.versions.insertVersion(Self.version("m", 1), trainingRatings: ratings, serve: true)
            #expect(throws: StorageError.self) { try s.versions.insertVersion(Self.version("m", 1), trainingRatings: [], serve: true) }
            try s.versions.insertVersion(Self.version("m", 2, parent: 1), trainingRatings: [], serve: false)
            try s.versions.insertVersion(Self.version("m", 3, parent: 2), trainingRatings: [], serve: false)
            let v = try reopen().versions
            #expect(try v.models().map(\.name) == ["m"] && v.models()[0].servingVersion == 1)
            #expect(try v.versions(model: "m").map(\.status) == [.serving, .built, .built])
            #expect(try v.failUnservedVersions(model: "m") == [2, 3])
            try v.setServing(model: "m", version: 2)
            #expect(try v.versions(model: "m").map(\.status) == [.retired, .serving, .failed])
            #expect(throws: StorageError.self) { try v.setServing(model: "m", version: 9) }
            let loaded = try v.loadVersion(model: "m", number: 2)
            #expect(loaded.features.table == Self.version("m", 2).features.table && loaded.prior == [0.1, 0.2, 0.3] && loaded.parent == 1)
            #expect(throws: StorageError.self) { try v.loadVersion(model: "m", number: 9) }
            #expect(try v.initialRatings(model: "m") == ratings)
            #expect(try v.trainingItems(model: "m", uid: "u1").sorted() == ["i1", "i2"])
            // Competitions name a stored version; promoting serves it and ends the competition.
            #expect(throws: StorageError.self) { try v.setCompetition(model: "m", CompetitionRecord(challenger: 9, allocation: "thompson", since: 5)) }
            #expect(throws: StorageError.self) { try v.setCompetition(model: "x", nil) }
            try v.setCompetition(model: "m", CompetitionRecord(challenger: 1, allocation: "split(0.5)", since: 5))
            #expect(try v.competitions() == ["m": CompetitionRecord(challenger: 1, allocation: "split(0.5)", since: 5)])
            #expect(try v.versions(model: "m")[0].status == .challenger)
            try v.promoteChallenger(model: "m", version: 1)
            #expect(try v.competitions().isEmpty && v.models()[0].servingVersion == 1)
            #expect(try v.versions(model: "m").map(\.status) == [.serving, .retired, .failed])
            #expect(try v.explorationPolicies() == ["m": "greedy"])
            try v.setExplorationPolicy(model: "m", policy: "linucb(1.0)")
            #expect(throws: StorageError.self) { try v.setExplorationPolicy(model: "x", policy: "greedy") }
            try v.deleteVersions(model: "m", [3, 7])
            #expect(try reopen().versions.versions(model: "m").map(\.number) == [1, 2])
            #expect(try reopen().versions.explorationPolicies() == ["m": "linucb(1.0)"])
        }
    }

    /// A model's items read back as written (each kind of attribute, the hidden flag), in
    /// first-write order: a replaced item keeps its place, a repeated id in one call is written
    /// once, the last one winning; models keep their own catalogues; all of it across a reopen.
    @Test(arguments: Backend.available)
    func theCatalogueKeepsItemsInFirstWriteOrder(_ backend: Backend) throws {
        try withStores(backend) { s, reopen in
            let a = CatalogueItem(id: "a", attributes: ["genre": .string("drama"), "year": .number(1_999.5), "tags": .strings(["x", "y"])])
            let b = CatalogueItem(id: "b", attributes: ["genre": .string("comedy")], hidden: true)
            let c = CatalogueItem(id: "c")
            #expect(try s.versions.catalogueItems(model: "m").isEmpty)
            try s.versions.putItems(model: "m", [b, a])
            try s.versions.putItems(model: "m", [c])
            #expect(try reopen().versions.catalogueItems(model: "m") == [b, a, c])
            #expect(try reopen().versions.catalogueItem(model: "m", id: "a") == a)
            #expect(try s.versions.catalogueItem(model: "m", id: "b")?.hidden == true)

            // Replacing: new attributes and flag, the old place. A repeated id: the last wins.
            let a2 = CatalogueItem(id: "a", attributes: ["genre": .string("thriller")], hidden: true)
            let d1 = CatalogueItem(id: "d", attributes: ["n": .number(1)]), d2 = CatalogueItem(id: "d", attributes: ["n": .number(2)])
            let b2 = CatalogueItem(id: "b", attributes: [:], hidden: false)
            try s.versions.putItems(model: "m", [d1, a2, b2, d2])
            let v = try reopen().versions
            #expect(try v.catalogueItems(model: "m") == [b2, a2, c, d2])
            #expect(try v.catalogueItem(model: "m", id: "a") == a2 && v.catalogueItem(model: "m", id: "d") == d2)

            // Models are separate; an unknown id or model has no item.
            try s.versions.putItems(model: "other", [CatalogueItem(id: "c", attributes: ["k": .string("v")]), CatalogueItem(id: "z")])
            #expect(try reopen().versions.catalogueItems(model: "other").map(\.id) == ["c", "z"])
            #expect(try s.versions.catalogueItem(model: "m", id: "c") == c && s.versions.catalogueItem(model: "m", id: "z") == nil)
            #expect(try s.versions.catalogueItem(model: "nobody", id: "a") == nil && s.versions.catalogueItems(model: "nobody").isEmpty)
            try s.versions.putItems(model: "m", [])
            #expect(try reopen().versions.catalogueItems(model: "m").count == 4)
        }
    }

    @Test(arguments: Backend.available)
    func anItemIsHiddenAndShownAgain(_ backend: Backend) throws {
        try withStores(backend) { s, reopen in
            let a = CatalogueItem(id: "a", attributes: ["genre": .string("drama")])
            try s.versions.putItems(model: "m", [a, CatalogueItem(id: "b")])
            try s.versions.putItems(model: "other", [CatalogueItem(id: "a")])
            #expect(try s.versions.setItemHidden(model: "m", item: "a", hidden: true))
            #expect(try reopen().versions.catalogueItem(model: "m", id: "a") == CatalogueItem(id: "a", attributes: a.attributes, hidden: true))
            #expect(try s.versions.setItemHidden(model: "m", item: "a", hidden: true), "idempotent")
            #expect(try reopen().versions.catalogueItems(model: "m").map(\.hidden) == [true, false], "only that item")
            #expect(try reopen().versions.catalogueItem(model: "other", id: "a")?.hidden == false, "only that model's")
            #expect(try s.versions.setItemHidden(model: "m", item: "a", hidden: false))
            #expect(try reopen().versions.catalogueItem(model: "m", id: "a") == a)
            #expect(try !s.versions.setItemHidden(model: "m", item: "nothing", hidden: true))
            #expect(try !s.versions.setItemHidden(model: "nobody", item: "a", hidden: true))
            #expect(try reopen().versions.catalogueItem(model: "m", id: "nothing") == nil, "nothing written")
            #expect(try reopen().versions.catalogueItems(model: "m").map(\.id) == ["a", "b"])
        }
    }

    @Test(arguments: Backend.available)
    func catalogueChangesAreReadAfterARevision(_ backend: Backend) throws {
        try withStores(backend) { s, reopen in
            #expect(try s.versions.catalogueChanges(model: "m", after: 0) == ([], 0))
            let a = CatalogueItem(id: "a", attributes: ["n": .number(1)]), b = CatalogueItem(id: "b")
            try s.versions.putItems(model: "m", [a, b])
            try s.versions.putItems(model: "other", [CatalogueItem(id: "x")])
            let first = try reopen().versions.catalogueChanges(model: "m", after: 0)
            #expect(first.items == [a, b] && first.revision == 1)
            #expect(try s.versions.catalogueChanges(model: "m", after: first.revision) == ([], 1), "nothing since")
            // A hide, then a replacement: read after the first revision, in the order written.
            #expect(try s.versions.setItemHidden(model: "m", item: "b", hidden: true))
            let a2 = CatalogueItem(id: "a", attributes: ["n": .number(2)])
            try s.versions.putItems(model: "m", [a2])
            let next = try reopen().versions.catalogueChanges(model: "m", after: first.revision)
            #expect(next.items == [CatalogueItem(id: "b", hidden: true), a2] && next.revision == 3)
            #expect(try !s.versions.setItemHidden(model: "m", item: "nothing", hidden: true))
            #expect(try s.versions.catalogueChanges(model: "m", after: 3) == ([], 3), "a write of nothing takes no revision")
            #expect(try s.versions.catalogueChanges(model: "m", after: .max).items.isEmpty)
            #expect(try s.versions.catalogueChanges(model: "other", after: 0).items.map(\.id) == ["x"])
        }
    }

    /// A `putItems` that fails writes nothing: not when an attribute cannot be stored, not when
    /// the write itself fails (injected); a retry then writes it all.
    @Test(arguments: Backend.available)
    func aFailedPutOfItemsWritesNothing(_ backend: Backend) throws {
        try withStores(backend) { s, reopen in
            try s.versions.putItems(model: "m", [CatalogueItem(id: "a", attributes: ["n": .number(1)])])
            let batch = [CatalogueItem(id: "a", attributes: ["n": .number(2)]), CatalogueItem(id: "b"),
                         CatalogueItem(id: "c", attributes: ["n": .number(.infinity)])]
            #expect(throws: StorageError.self) { try s.versions.putItems(model: "m", batch) }
            #expect(try reopen().versions.catalogueItems(model: "m") == [CatalogueItem(id: "a", attributes: ["n": .number(1)])])

            let faults = Faults()
            let failing = s.injectingFaults(faults)
            faults.failNext(.versionWrite)
            let good = Array(batch.prefix(2))
            #expect(throws: StorageError.self) { try failing.versions.putItems(model: "m", good) }
            #expect(try failing.versions.catalogueItems(model: "m") == [CatalogueItem(id: "a", attributes: ["n": .number(1)])])
            faults.failNext(.versionWrite)
            #expect(throws: StorageError.self) { try failing.versions.setItemHidden(model: "m", item: "a", hidden: true) }
            faults.failNext(.versionRead)
            #expect(throws: StorageError.self) { try failing.versions.catalogueItem(model: "m", id: "a") }
            #expect(faults.calls(.versionWrite) == 2 && faults.calls(.versionRead) == 2)
            try failing.versions.putItems(model: "m", good)
            #expect(try reopen().versions.catalogueItems(model: "m") == good)
        }
    }

    @Test(arguments: Backend.available)
    func snapshotsKeepEachRowsSequence(_ backend: Backend) throws {
        try withStores(backend) { s, reopen in
            #expect(throws: StorageError.self) { try s.snapshots.snapshotSequence(model: "m", version: 1) }
            try s.snapshots.replaceUsers(model: "m", version: 1, reflecting: 10) { write in
                try write([SnapshotRow(uid: "u1", weights: Self.weights(1), seq: 10)])
                try write([SnapshotRow(uid: "u2", weights: Self.weights(2), seq: 10)])
            }
            try s.snapshots.saveSnapshot(model: "m", version: 1, rows: [SnapshotRow(uid: "u2", weights: Self.weights(3, observations: 2), seq: 14)],
                                         observedItems: [ObservedItem(uid: "u2", item: "i1"), ObservedItem(uid: "u2", item: "i1")])
            try s.snapshots.advanceSnapshot(model: "m", version: 1, to: 12)
            try s.snapshots.advanceSnapshot(model: "m", version: 1, to: 11)
            let snapshots = try reopen().snapshots
            let full = try snapshots.loadSnapshot(model: "m", version: 1, dimension: 3)
            #expect(full.seq == 12 && full.ahead == ["u2": 14], "advanced, never lowered; the row ahead is named")
            let u2 = try #require(full.users["u2"]), u1 = try #require(full.users["u1"])
            #expect(u2.observations == 2 && u2.runningLoss == 3 && u1.observations == 1)
            #expect(Array(u2.ridge.weights.prefix(3)) == Array(Self.weights(3, observations: 2).ridge.weights.prefix(3)))
            #expect(full.reflects(uid: "u2", seq: 13) && !full.reflects(uid: "u1", seq: 13))
            var compact: [String: StoredWeights] = [:]
            try snapshots.forEachStoredWeights(model: "m", version: 1, dimension: 3) { compact[$0.uid] = $0 }
            #expect(compact["u2"]?.weights == Array(Self.weights(3, observations: 2).ridge.weights.prefix(3)) && compact["u2"]?.seq == 14)
            #expect(throws: StorageError.self) { try snapshots.forEachStoredWeights(model: "m", version: 1, dimension: 4) { _ in } }
            #expect(try snapshots.loadUserState(model: "m", version: 1, uid: "u1", dimension: 3)?.seq == 10)
            #expect(try snapshots.loadUserState(model: "m", version: 1, uid: "nobody", dimension: 3) == nil)
            #expect(try snapshots.userCount(model: "m", version: 1) == 2)
            #expect(try snapshots.observedItems(model: "m", uid: "u2") == ["i1"])
            try snapshots.saveObservedItems(model: "m", [ObservedItem(uid: "u2", item: "i2")])
            #expect(try snapshots.observedItems(model: "m", uid: "u2").sorted() == ["i1", "i2"])
            try snapshots.saveHotUsers(model: "m", version: 1, ["u2", "u1", "u2"])
            #expect(try snapshots.hotUsers(model: "m", version: 1).sorted() == ["u1", "u2"])
            try snapshots.saveHotUsers(model: "m", version: 1, ["u1"])
            #expect(try snapshots.hotUsers(model: "m", version: 1) == ["u1"], "replaced, not added to")
            // A new attempt at a version replaces what an earlier one left.
            try snapshots.replaceUsers(model: "m", version: 1, reflecting: 20) { write in
                try write([SnapshotRow(uid: "u3", weights: Self.weights(5), seq: 20)])
            }
            #expect(try snapshots.loadSnapshot(model: "m", version: 1, dimension: 3).users.keys.sorted() == ["u3"])
            try snapshots.deleteWholeVersion(model: "m", version: 1)
            #expect(throws: StorageError.self) { try snapshots.loadSnapshot(model: "m", version: 1, dimension: 3) }
            #expect(try snapshots.userCount(model: "m", version: 1) == 0 && snapshots.hotUsers(model: "m", version: 1).isEmpty)
        }
    }

    @Test(arguments: Backend.available)
    func decisionsArePrunedOldestFirstAndCountedForGood(_ backend: Backend) throws {
        func decision(_ n: Int, model: String = "m", version: Int = 1) -> DecisionRecord {
            DecisionRecord(eventId: "e\(n)", model: model, version: version, uid: "u\(n % 3)", policy: "greedy", time: 1_000 + Double(n),
                           items: [.init(item: "i\(n)", score: 1, propensity: 1)], candidates: nil)
        }
        try withStores(backend) { s, reopen in
            try s.decisions.appendDecisions((0..<10).map { decision($0) } + [decision(20, model: "other", version: 2)])
            try s.decisions.appendDecisions([decision(3)])
            #expect(try s.decisions.decisionCount(model: "m") == 10, "a repeated event id is ignored")
            #expect(try s.decisions.decision(eventId: "e3") == decision(3))
            #expect(try s.decisions.decisions(model: "m", limit: 3).map(\.eventId) == ["e7", "e8", "e9"])
            #expect(try s.decisions.pruneDecisions(before: 1_002, keep: nil, batch: 1, maxBatches: 10) == 2)
            #expect(try s.decisions.pruneDecisions(before: nil, keep: 6, batch: 2, maxBatches: 1) == 2, "one batch")
            // Nine left, across models; the append trims to six, at most twice what it appended.
            #expect(try s.decisions.appendDecisions([decision(10)], trimBefore: nil, trimKeep: 6) == 2)
            let d = try reopen().decisions
            #expect(try d.decision(eventId: "e5") == nil && d.decision(eventId: "e6") == decision(6))
            #expect(try d.decisionCount(model: "m") == 11, "pruning leaves the count")
            #expect(try d.decisionVersions(model: "m", since: 1_008) == ["e8": 1, "e9": 1, "e10": 1])
            #expect(try d.decisionVersions(model: "other", since: 0) == ["e20": 2])
            try d.appendAssignments([Assignment(model: "m", since: 5, uid: "u1", version: 2), Assignment(model: "m", since: 5, uid: "u1", version: 1),
                                     Assignment(model: "m", since: 6, uid: "u2", version: 1)])
            #expect(try d.assignments(model: "m", since: 5) == ["u1": 2], "the first allocation stands")
        }
    }

    @Test(arguments: Backend.available)
    func aUsersErasureReachesEveryStoreAndIsIdempotent(_ backend: Backend) throws {
        try withStores(backend) { s, reopen in
            // The log: u0's entries up to the given sequence go, its last one too (the log's
            // newest), and the sequence numbers are never taken again.
            let seqs = try s.log.append([Observation(model: "a", uid: "u0", item: "i1", label: 1, time: 1),
                                         Observation(model: "a", uid: "u1", item: "i1", label: 2, time: 1),
                                         Observation(model: "b", uid: "u0", item: "i1", label: 3, time: 1),
                                         Observation(model: "a", uid: "u0", item: "i2", label: 4, time: 1, eventId: "e1")]).compactMap { $0 }
            #expect(try s.log.deleteUser(model: "a", uid: "u0", through: seqs[0]) == 1, "only up to the sequence")
            #expect(try s.log.deleteUser(model: "a", uid: "u0", through: seqs[3]) == 1, "the newest entry too")
            #expect(try s.log.deleteUser(model: "a", uid: "u0", through: .max) == 0, "idempotent")
            var log = try reopen().log
            #expect(try log.lastSequence() == seqs[3], "the last sequence stays")
            #expect(try log.observations(model: "a", after: 0, limit: 10).map(\.observation.uid) == ["u1"])
            #expect(try log.observationCount(model: "a") == 1 && log.observationCount(model: "b") == 1, "other models keep theirs")
            #expect(try log.feedback(model: "a").isEmpty)
            let next = try log.append([Observation(model: "a", uid: "u2", item: "i1", label: 5, time: 2)])
            #expect(next[0]! > seqs[3], "a sequence number is never reused")
            log = try reopen().log
            #expect(try log.lastSequence() == next[0])

            // The catalogue's training ratings.
            try s.versions.insertVersion(Self.version("a", 1), trainingRatings: [
                Rating(uid: "u0", item: "i1", label: 4, timestamp: 1), Rating(uid: "u1", item: "i2", label: 2, timestamp: 2),
                Rating(uid: "u0", item: "i2", label: 5, timestamp: 3)], serve: true)
            #expect(try s.versions.deleteTrainingRatings(model: "a", uid: "u0") == 2)
            #expect(try s.versions.deleteTrainingRatings(model: "a", uid: "u0") == 0)
            #expect(try reopen().versions.initialRatings(model: "a").map(\.uid) == ["u1"])
            #expect(try reopen().versions.trainingItems(model: "a", uid: "u0").isEmpty)

            // Snapshots: every version's state, the observed items, the hot users; the floor stays.
            for v in [1, 2] {
                try s.snapshots.replaceUsers(model: "a", version: v, reflecting: 3) { write in
                    try write([SnapshotRow(uid: "u0", weights: Self.weights(1), seq: 3), SnapshotRow(uid: "u1", weights: Self.weights(2), seq: 3)])
                }
                try s.snapshots.saveHotUsers(model: "a", version: v, ["u0", "u1"])
            }
            try s.snapshots.replaceUsers(model: "b", version: 1, reflecting: 3) { write in
                try write([SnapshotRow(uid: "u0", weights: Self.weights(1), seq: 3)])
            }
            try s.snapshots.saveObservedItems(model: "a", [ObservedItem(uid: "u0", item: "i1"), ObservedItem(uid: "u0", item: "i2"),
                                                           ObservedItem(uid: "u1", item: "i1")])
            #expect(try s.snapshots.deleteUser(model: "a", uid: "u0") == 2 + 2 + 2, "two states, two items, two hot records")
            #expect(try s.snapshots.deleteUser(model: "a", uid: "u0") == 0)
            let snapshots = try reopen().snapshots
            for v in [1, 2] {
                #expect(try snapshots.loadUserState(model: "a", version: v, uid: "u0", dimension: 3) == nil)
                #expect(try snapshots.loadSnapshot(model: "a", version: v, dimension: 3).users.keys.sorted() == ["u1"])
                var compact: [String] = []
                try snapshots.forEachStoredWeights(model: "a", version: v, dimension: 3) { compact.append($0.uid) }
                #expect(try compact == ["u1"] && snapshots.userCount(model: "a", version: v) == 1)
                #expect(try snapshots.hotUsers(model: "a", version: v) == ["u1"] && snapshots.snapshotSequence(model: "a", version: v) == 3)
            }
            #expect(try snapshots.observedItems(model: "a", uid: "u0").isEmpty && snapshots.observedItems(model: "a", uid: "u1") == ["i1"])
            #expect(try snapshots.userCount(model: "b", version: 1) == 1, "other models keep theirs")

            // The decision log: decisions and allocations; the count ever logged stays.
            func decision(_ n: Int, uid: String) -> DecisionRecord {
                DecisionRecord(eventId: "e\(n)", model: "a", version: 1, uid: uid, policy: "greedy", time: 1_000 + Double(n),
                               items: [.init(item: "i1", score: 1, propensity: 1)], candidates: nil)
            }
            try s.decisions.appendDecisions((0..<6).map { decision($0, uid: $0 % 2 == 0 ? "u0" : "u1") })
            try s.decisions.appendAssignments([Assignment(model: "a", since: 5, uid: "u0", version: 2),
                                               Assignment(model: "a", since: 5, uid: "u1", version: 1)])
            #expect(try s.decisions.deleteUser(model: "a", uid: "u0") == 3 + 1)
            #expect(try s.decisions.deleteUser(model: "a", uid: "u0") == 0)
            let d = try reopen().decisions
            #expect(try d.decisions(model: "a", limit: 10).map(\.eventId) == ["e1", "e3", "e5"])
            #expect(try d.decision(eventId: "e2") == nil && d.decisionCount(model: "a") == 6)
            #expect(try d.assignments(model: "a", since: 5) == ["u1": 1])
            #expect(try d.decisionVersions(model: "a", since: 1_002) == ["e3": 1, "e5": 1], "found across the gaps")
        }
    }

    static func ridge(_ label: Float, dimension: Int = 3) -> RidgeState {
        var ridge = RidgeState(prior: [Float](repeating: 0, count: dimension), lambda: 1)
        _ = ridge.update(features: padded((0..<dimension).map { Float($0) + label }), target: label)
        return ridge
    }

    /// Features padded with zeros to the kernels' stride, as `RidgeState.update` reads them.
    static func padded(_ features: [Float]) -> [Float] {
        features + [Float](repeating: 0, count: VectorKernels.paddedStride(features.count) - features.count)
    }

    /// Everything a version stores per row, bit for bit, one line each: users' full states with
    /// their sequences, their compact rows, items' states.
    static func contents(_ snapshots: any SnapshotStore, version: Int) throws -> [String] {
        var lines: [String] = []
        let full = try snapshots.loadSnapshot(model: "m", version: version, dimension: 3)
        for uid in full.users.keys.sorted() {
            let (w, seq) = try #require(try snapshots.loadUserState(model: "m", version: version, uid: uid, dimension: 3))
            lines.append("user \(uid) \(w.ridge.serialized()) \(w.observations) \(String(describing: w.runningLoss)) \(w.bootstrapped) \(seq)")
        }
        try snapshots.forEachStoredWeights(model: "m", version: version, dimension: 3) { r in
            lines.append("compact \(r.uid) \(r.weights) \(r.observations) \(String(describing: r.runningLoss)) \(r.bootstrapped) \(r.seq)")
        }
        for i in try snapshots.loadItemStates(model: "m", version: version, dimension: 3) {
            lines.append("item \(i.item) \(i.ridge.serialized()) \(i.observations) \(i.seq)")
        }
        return lines.sorted()
    }

    /// A version's first snapshot as the engine writes it: users u1-u3 and items i1, i2 at
    /// sequence 5, the items from inside `rows`.
    static func writeFirstSnapshot(_ snapshots: any SnapshotStore, version: Int = 1) throws {
        try snapshots.replaceUsers(model: "m", version: version, reflecting: 5) { write in
            try write((1...3).map { SnapshotRow(uid: "u\($0)", weights: Self.weights(Float($0)), seq: 5) })
            try snapshots.saveItemStates(model: "m", version: version, rows: [ItemStateRow(item: "i1", ridge: Self.ridge(1), observations: 1, seq: 5),
                                                                           ItemStateRow(item: "i2", ridge: Self.ridge(2), observations: 2, seq: 5)],
                                         keepingPrevious: false)
        }
    }

    /// A snapshot in progress, in three transactions: u1 twice, u2, a new u4; i1 and a new i3.
    static func writeKeptSnapshot(_ snapshots: any SnapshotStore, version: Int = 1) throws {
        try snapshots.saveSnapshot(model: "m", version: version, rows: [SnapshotRow(uid: "u1", weights: Self.weights(11, observations: 3), seq: 8),
                                                                      SnapshotRow(uid: "u4", weights: Self.weights(14), seq: 8)],
                                   observedItems: [], keepingPrevious: true)
        try snapshots.saveItemStates(model: "m", version: version, rows: [ItemStateRow(item: "i1", ridge: Self.ridge(11), observations: 4, seq: 8),
                                                                       ItemStateRow(item: "i3", ridge: Self.ridge(13), observations: 1, seq: 8)],
                                     keepingPrevious: true)
        try snapshots.saveSnapshot(model: "m", version: version, rows: [SnapshotRow(uid: "u1", weights: Self.weights(21, observations: 4), seq: 9),
                                                                      SnapshotRow(uid: "u2", weights: Self.weights(22), seq: 9)],
                                   observedItems: [], keepingPrevious: true)
    }

    /// A version is deleted a bounded chunk at a time: user states, item states, kept copies
    /// and hot users, its snapshot sequence last; another version is untouched, and the stored
    /// versions are listed before and after.
    @Test(arguments: Backend.available)
    func aVersionIsDeletedInBoundedChunksItsSequenceLast(_ backend: Backend) throws {
        try withStores(backend) { s, reopen in
            for v in [1, 2] {
                try Self.writeFirstSnapshot(s.snapshots, version: v)
                try Self.writeKeptSnapshot(s.snapshots, version: v)
                try s.snapshots.saveHotUsers(model: "m", version: v, ["u1", "u2"])
            }
            try Self.writeFirstSnapshot(s.snapshots, version: 7)
            #expect(try s.snapshots.storedVersions(model: "m") == [1, 2, 7] && s.snapshots.storedVersions(model: "other").isEmpty)
            var calls: [Int] = []
            while true {
                let n = try s.snapshots.deleteVersion(model: "m", version: 1, limit: 4)
                calls.append(n)
                if n == 0 { break }
                if calls.count == 1 { #expect(try s.snapshots.snapshotSequence(model: "m", version: 1) == 5, "the sequence goes last") }
            }
            #expect(calls.count >= 4 && calls.allSatisfy { $0 <= 4 } && calls.suffix(2) == [1, 0], "\(calls)")
            let after = try reopen().snapshots
            #expect(try after.storedVersions(model: "m") == [2, 7])
            #expect(try after.userCount(model: "m", version: 1) == 0 && after.hotUsers(model: "m", version: 1).isEmpty)
            #expect(try after.loadItemStates(model: "m", version: 1, dimension: 3).isEmpty)
            #expect(try after.restoreInterruptedSnapshot(model: "m", version: 1) == 0)
            #expect(throws: StorageError.self) { try after.snapshotSequence(model: "m", version: 1) }
            #expect(try after.userCount(model: "m", version: 2) == 4 && after.hotUsers(model: "m", version: 2) == ["u1", "u2"])
            #expect(try after.loadItemStates(model: "m", version: 2, dimension: 3).count == 3)
            #expect(try after.deleteVersion(model: "m", version: 1, limit: 4) == 0, "nothing left: idempotent")
        }
    }

    /// Item states read back bit for bit, by item id, replaced in place by a later save, per
    /// version; one of another dimension is `.corrupt`, naming its item.
    @Test(arguments: Backend.available)
    func itemStatesRoundTripInItemOrder(_ backend: Backend) throws {
        try withStores(backend) { s, reopen in
            #expect(try s.snapshots.loadItemStates(model: "m", version: 1, dimension: 3).isEmpty)
            let rows = [ItemStateRow(item: "b", ridge: Self.ridge(2), observations: 2, seq: 7), ItemStateRow(item: "a", ridge: Self.ridge(1), observations: 1, seq: 6),
                        ItemStateRow(item: "c", ridge: Self.ridge(3), observations: 0, seq: 8)]
            try s.snapshots.saveItemStates(model: "m", version: 1, rows: rows, keepingPrevious: false)
            try s.snapshots.saveItemStates(model: "m", version: 1, rows: [ItemStateRow(item: "b", ridge: Self.ridge(5), observations: 3, seq: 9)],
                                           keepingPrevious: false)
            let loaded = try reopen().snapshots.loadItemStates(model: "m", version: 1, dimension: 3)
            #expect(loaded.map(\.item) == ["a", "b", "c"])
            // Bit for bit what the written bytes decode to (a state that did not pack is written
            // as "RDG2" and comes back packed, as users' states do).
            let written = try [Self.ridge(1), Self.ridge(5), Self.ridge(3)].map { try RidgeState(serialized: $0.serialized()) }
            #expect(loaded.map { $0.ridge.serialized() } == written.map { $0.serialized() } && loaded.map(\.ridge) == written)
            #expect(loaded.map(\.observations) == [1, 3, 0] && loaded.map(\.seq) == [6, 9, 8])
            #expect(try s.snapshots.loadItemStates(model: "m", version: 2, dimension: 3).isEmpty, "per version")
            #expect(try s.snapshots.loadItemStates(model: "other", version: 1, dimension: 3).isEmpty, "per model")
            // One item at a time, as a cold item is read back.
            let one = try #require(try reopen().snapshots.loadItemState(model: "m", version: 1, item: "b", dimension: 3))
            #expect(one.item == "b" && one.ridge == written[1] && one.observations == 3 && one.seq == 9)
            #expect(try s.snapshots.loadItemState(model: "m", version: 1, item: "d", dimension: 3) == nil)
            #expect(try s.snapshots.loadItemState(model: "m", version: 2, item: "b", dimension: 3) == nil, "per version")

            try s.snapshots.saveItemStates(model: "m", version: 1, rows: [ItemStateRow(item: "bb", ridge: Self.ridge(1, dimension: 2), observations: 1, seq: 9)],
                                           keepingPrevious: false)
            let error = #expect(throws: StorageError.self) { try reopen().snapshots.loadItemStates(model: "m", version: 1, dimension: 3) }
            #expect(error?.code == .corrupt)
            #expect(error?.message.contains("(model m, version 1, item bb)") == true && error?.message.contains("dimension 2") == true,
                    "\(error?.message ?? "")")
            let corrupt = #expect(throws: StorageError.self) { try reopen().snapshots.loadItemState(model: "m", version: 1, item: "bb", dimension: 3) }
            #expect(corrupt?.code == .corrupt && corrupt?.message.contains("item bb") == true, "\(corrupt?.message ?? "")")
        }
    }

    /// Rows written with `keepingPrevious` by a snapshot cut short are put back as they were
    /// before it (the first kept copy counts); rows it created are deleted; then nothing is kept.
    @Test(arguments: Backend.available)
    func anInterruptedSnapshotIsRestoredAsOneCut(_ backend: Backend) throws {
        try withStores(backend) { s, reopen in
            try Self.writeFirstSnapshot(s.snapshots)
            #expect(try s.snapshots.restoreInterruptedSnapshot(model: "m", version: 1) == 0, "a first snapshot keeps nothing")
            let before = try Self.contents(s.snapshots, version: 1)
            #expect(before.count == 3 + 3 + 2)
            try Self.writeKeptSnapshot(s.snapshots)
            #expect(try Self.contents(reopen().snapshots, version: 1) != before)
            // Put back: u1, u2, i1; deleted: u4, i3.
            #expect(try reopen().snapshots.restoreInterruptedSnapshot(model: "m", version: 1) == 5)
            let snapshots = try reopen().snapshots
            #expect(try Self.contents(snapshots, version: 1) == before)
            #expect(try snapshots.loadUserState(model: "m", version: 1, uid: "u4", dimension: 3) == nil && snapshots.userCount(model: "m", version: 1) == 3)
            #expect(try snapshots.loadItemStates(model: "m", version: 1, dimension: 3).map(\.item) == ["i1", "i2"])
            #expect(try snapshots.restoreInterruptedSnapshot(model: "m", version: 1) == 0, "the kept copies are gone")
            #expect(try Self.contents(reopen().snapshots, version: 1) == before)
        }
    }

    /// A snapshot that completes (its sequence advanced, even to no new value) keeps its rows;
    /// writes without `keepingPrevious` keep nothing.
    @Test(arguments: Backend.available)
    func aCompletedSnapshotOrAPlainWriteKeepsNothing(_ backend: Backend) throws {
        try withStores(backend) { s, reopen in
            try Self.writeFirstSnapshot(s.snapshots)
            try Self.writeKeptSnapshot(s.snapshots)
            let after = try Self.contents(s.snapshots, version: 1)
            try s.snapshots.advanceSnapshot(model: "m", version: 1, to: 4)
            #expect(try s.snapshots.snapshotSequence(model: "m", version: 1) == 5, "not lowered")
            #expect(try reopen().snapshots.restoreInterruptedSnapshot(model: "m", version: 1) == 0)
            #expect(try Self.contents(reopen().snapshots, version: 1) == after)
            #expect(try s.snapshots.userCount(model: "m", version: 1) == 4)

            try s.snapshots.saveSnapshot(model: "m", version: 1, rows: [SnapshotRow(uid: "u1", weights: Self.weights(31), seq: 10)])
            try s.snapshots.saveSnapshot(model: "m", version: 1, rows: [SnapshotRow(uid: "u5", weights: Self.weights(35), seq: 10)],
                                         observedItems: [ObservedItem(uid: "u5", item: "i1")])
            try s.snapshots.saveSnapshot(model: "m", version: 1, rows: [SnapshotRow(uid: "u2", weights: Self.weights(32), seq: 10)],
                                         observedItems: [], keepingPrevious: false)
            try s.snapshots.saveItemStates(model: "m", version: 1, rows: [ItemStateRow(item: "i4", ridge: Self.ridge(4), observations: 1, seq: 10)],
                                           keepingPrevious: false)
            let plain = try Self.contents(s.snapshots, version: 1)
            #expect(try s.snapshots.restoreInterruptedSnapshot(model: "m", version: 1) == 0)
            #expect(try Self.contents(reopen().snapshots, version: 1) == plain)
        }
    }

    /// A version's item states and kept copies go with it: cleared by a new first snapshot of
    /// that version only, deleted with its users; a user's erasure drops its kept copies, so a
    /// restore does not bring it back.
    @Test(arguments: Backend.available)
    func itemStatesAndKeptCopiesGoWithTheirVersionAndUser(_ backend: Backend) throws {
        try withStores(backend) { s, reopen in
            for v in 1...3 {
                try Self.writeFirstSnapshot(s.snapshots, version: v)
                try Self.writeKeptSnapshot(s.snapshots, version: v)
            }
            try s.snapshots.replaceUsers(model: "m", version: 1, reflecting: 20) { write in
                try write([SnapshotRow(uid: "u9", weights: Self.weights(9), seq: 20)])
            }
            #expect(try s.snapshots.loadItemStates(model: "m", version: 1, dimension: 3).isEmpty)
            #expect(try s.snapshots.restoreInterruptedSnapshot(model: "m", version: 1) == 0)
            #expect(try s.snapshots.loadSnapshot(model: "m", version: 1, dimension: 3).users.keys.sorted() == ["u9"])
            try s.snapshots.deleteWholeVersion(model: "m", version: 2)
            #expect(try s.snapshots.loadItemStates(model: "m", version: 2, dimension: 3).isEmpty)
            #expect(try s.snapshots.restoreInterruptedSnapshot(model: "m", version: 2) == 0)
            #expect(try s.snapshots.userCount(model: "m", version: 2) == 0, "nothing restored into a deleted version")

            // Version 3 keeps its own; u1 is erased (one row, in version 3; kept copies not counted).
            #expect(try s.snapshots.loadItemStates(model: "m", version: 3, dimension: 3).map(\.item) == ["i1", "i2", "i3"])
            #expect(try s.snapshots.deleteUser(model: "m", uid: "u1") == 1)
            #expect(try reopen().snapshots.restoreInterruptedSnapshot(model: "m", version: 3) == 4, "u2, i1 put back; u4, i3 deleted")
            let snapshots = try reopen().snapshots
            #expect(try snapshots.loadUserState(model: "m", version: 3, uid: "u1", dimension: 3) == nil, "the erased user stays erased")
            #expect(try snapshots.loadSnapshot(model: "m", version: 3, dimension: 3).users.keys.sorted() == ["u2", "u3"])
            var compact: [String] = []
            try snapshots.forEachStoredWeights(model: "m", version: 3, dimension: 3) { compact.append($0.uid) }
            #expect(compact.sorted() == ["u2", "u3"])
        }
    }

    /// An injected fault fails `saveItemStates` before it writes anything; item reads and
    /// restores go through the faults too.
    @Test(arguments: Backend.available)
    func aFailedSaveOfItemStatesWritesNothing(_ backend: Backend) throws {
        try withStores(backend) { s, reopen in
            let faults = Faults()
            let failing = s.injectingFaults(faults)
            let rows = [ItemStateRow(item: "i1", ridge: Self.ridge(1), observations: 1, seq: 5)]
            faults.failNext(.snapshotWrite)
            #expect(throws: StorageError.self) { try failing.snapshots.saveItemStates(model: "m", version: 1, rows: rows, keepingPrevious: true) }
            #expect(try reopen().snapshots.loadItemStates(model: "m", version: 1, dimension: 3).isEmpty)
            #expect(try s.snapshots.restoreInterruptedSnapshot(model: "m", version: 1) == 0, "nothing kept either")
            faults.failNext(.snapshotRead)
            #expect(throws: StorageError.self) { try failing.snapshots.loadItemStates(model: "m", version: 1, dimension: 3) }
            faults.failNext(.snapshotWrite)
            #expect(throws: StorageError.self) { try failing.snapshots.restoreInterruptedSnapshot(model: "m", version: 1) }
            #expect(faults.calls(.snapshotWrite) == 2 && faults.calls(.snapshotRead) == 1)
            try failing.snapshots.saveItemStates(model: "m", version: 1, rows: rows, keepingPrevious: false)
            #expect(try reopen().snapshots.loadItemStates(model: "m", version: 1, dimension: 3).map(\.item) == ["i1"])
        }
    }
}

extension SnapshotStore {
    /// Deletes a whole version, as the engine's prune does: a chunk at a time.
    func deleteWholeVersion(model: String, version: Int) throws {
        while try deleteVersion(model: model, version: version, limit: 2) > 0 {}
    }
}
