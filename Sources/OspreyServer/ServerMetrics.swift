import OspreyEngine
import Prometheus

/// Request counts and latency histograms (swift-prometheus), plus the engine's state read at
/// scrape time, in the Prometheus text format.
///
/// Each route's counter and histogram are made once, so recording a request is a few atomic
/// operations and no lookup; the histogram buckets start at 25 µs because most requests take
/// well under a millisecond.
final class ServerMetrics: Sendable {
    static let buckets: [Duration] = [
        .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(100), .milliseconds(250), .seconds(1),
    ]

    /// One route's instruments.
    struct Route: Sendable {
        let name: String
        let ok: Counter
        let duration: DurationHistogram
    }

    let registry = PrometheusCollectorRegistry()
    /// Requests answered on the event loops by ``FastPathHandler`` (also counted by route).
    let fastPath: Counter
    /// Of those, the `topk` calls scored on the scan pool.
    let scanned: Counter

    init() {
        fastPath = registry.makeCounter(name: "osprey_http_fast_path_requests_total")
        scanned = registry.makeCounter(name: "osprey_http_scanned_requests_total")
    }

    func route(_ name: String) -> Route {
        Route(
            name: name,
            ok: registry.makeCounter(name: "osprey_http_requests_total", labels: [("route", name), ("status", "200")]),
            duration: registry.makeDurationHistogram(name: "osprey_http_request_duration_seconds", labels: [("route", name)], buckets: Self.buckets))
    }

    /// Records a finished request.
    func record(_ route: Route, status: Int, duration: Duration) {
        route.duration.record(duration)
        if status == 200 {
            route.ok.increment()
        } else {
            registry.makeCounter(name: "osprey_http_requests_total", labels: [("route", route.name), ("status", String(status))]).increment()
        }
    }

    /// The exposition text: HTTP metrics, then the engine's gauges and counters.
    func render(manager: Manager) -> String {
        var text = registry.emitToString()
        var observations = "# TYPE osprey_observations_total counter\n"
        var users = "# TYPE osprey_users gauge\n"
        var version = "# TYPE osprey_model_version gauge\n"
        var items = "# TYPE osprey_items gauge\n"
        var stale = "# TYPE osprey_model_stale gauge\n"
        var loss = "# TYPE osprey_prequential_loss gauge\n"
        var validation = "# TYPE osprey_validation_loss gauge\n"
        var exploration = "# TYPE osprey_exploration_loss gauge\n"
        var decisions = "# TYPE osprey_decisions_total counter\n"
        var feedback = "# TYPE osprey_decision_feedback_total counter\n"
        var cache = ""
        for (name, type) in [("hits_total", "counter"), ("misses_total", "counter"), ("stale_total", "counter"),
                             ("evictions_total", "counter"), ("entries", "gauge")] {
            cache += "# TYPE osprey_prediction_cache_\(name) \(type)\n"
            for model in manager.registry.all {
                let predictions = model.current.predictions
                let s = predictions.statistics
                let value = switch name {
                case "hits_total": s.hitCount
                case "misses_total": s.missCount
                case "stale_total": s.staleCount
                case "evictions_total": s.evictionCount
                default: predictions.count
                }
                cache += "osprey_prediction_cache_\(name)\(Self.label(model.name)) \(value)\n"
            }
        }
        let featureCaches = manager.registry.all.compactMap { m in m.current.featureCache.map { (m.name, $0) } }
        for (name, type) in [("hits_total", "counter"), ("misses_total", "counter"),
                             ("evictions_total", "counter"), ("entries", "gauge")] where !featureCaches.isEmpty {
            cache += "# TYPE osprey_feature_cache_\(name) \(type)\n"
            for (model, features) in featureCaches {
                let s = features.statistics
                let value = switch name {
                case "hits_total": s.hitCount
                case "misses_total": s.missCount
                case "evictions_total": s.evictionCount
                default: features.count
                }
                cache += "osprey_feature_cache_\(name)\(Self.label(model)) \(value)\n"
            }
        }
        var tiers = ""
        for (name, type) in [("users_hot", "gauge"), ("users_cold", "gauge"), ("user_rebuilds_total", "counter"),
                             ("user_rebuilds_prefetched_total", "counter"), ("users_warmed_total", "counter"), ("user_evictions_total", "counter"),
                             ("user_rebuild_seconds_total", "counter")] {
            tiers += "# TYPE osprey_\(name) \(type)\n"
            for model in manager.registry.all {
                let users = model.current.users
                let s = users.statistics
                let value: String
                switch name {
                case "users_hot": value = "\(users.hotCount)"
                case "users_cold": value = "\(users.count - users.hotCount)"
                case "user_rebuilds_total": value = "\(s.rebuildCount)"
                case "user_rebuilds_prefetched_total": value = "\(s.prefetchedRebuildCount)"
                case "users_warmed_total": value = "\(s.warmedCount)"
                case "user_evictions_total": value = "\(s.evictionCount)"
                default: value = "\(s.rebuildSeconds)"
                }
                tiers += "osprey_\(name)\(Self.label(model.name)) \(value)\n"
            }
        }
        for model in manager.registry.all {
            let label = Self.label(model.name)
            observations += "osprey_observations_total\(label) \(model.observations)\n"
            let state = model.current
            users += "osprey_users\(label) \(state.users.count)\n"
            let v = state.version
            version += "osprey_model_version\(label) \(v.number)\n"
            items += "osprey_items\(label) \(v.features.catalog.count)\n"
            let quality = state.quality
            stale += "osprey_model_stale\(label) \(quality.stale ? 1 : 0)\n"
            if let windowed = quality.windowedLoss { loss += "osprey_prequential_loss\(label) \(windowed)\n" }
            if let held = quality.validationLoss { validation += "osprey_validation_loss\(label) \(held)\n" }
            if let pool = quality.explorationLoss { exploration += "osprey_exploration_loss\(label) \(pool)\n" }
            decisions += "osprey_decisions_total\(label) \(model.decisions)\n"
            feedback += "osprey_decision_feedback_total\(label) \(model.feedback)\n"
        }
        text += observations + users + version + items + stale + loss + validation + exploration + decisions + feedback + cache + tiers
        text += Self.competitionMetrics(manager)
        text += "# TYPE osprey_decision_log_write_failures_total counter\nosprey_decision_log_write_failures_total \(manager.decisionLogFailureCount)\n"
        text += "# TYPE osprey_decisions_pruned_total counter\nosprey_decisions_pruned_total \(manager.decisionsPrunedCount)\n"
        text += "# TYPE osprey_group_commits_total counter\nosprey_group_commits_total \(manager.ingestor.commitCount)\n"
        let snapshots = manager.snapshotter.statistics
        text += "# TYPE osprey_snapshots_total counter\nosprey_snapshots_total \(snapshots.completedCount)\n"
        text += "# TYPE osprey_snapshot_failures_total counter\nosprey_snapshot_failures_total \(snapshots.failureCount)\n"
        text += "# TYPE osprey_snapshot_users_total counter\nosprey_snapshot_users_total \(snapshots.usersSaved)\n"
        text += "# TYPE osprey_snapshot_seconds_total counter\nosprey_snapshot_seconds_total \(snapshots.seconds)\n"
        text += "# TYPE osprey_snapshot_in_progress gauge\nosprey_snapshot_in_progress \(snapshots.running ? 1 : 0)\n"
        text += "# TYPE osprey_retrain_failures_total counter\nosprey_retrain_failures_total \(manager.retrainer.failureCount)\n"
        text += "# TYPE osprey_retrain_cancellations_total counter\nosprey_retrain_cancellations_total \(manager.retrainer.cancellationCount)\n"
        return text
    }

    /// Per-version counts and reward of each running competition.
    static func competitionMetrics(_ manager: Manager) -> String {
        var users = "# TYPE osprey_competition_users gauge\n"
        var decisions = "# TYPE osprey_competition_decisions_total counter\n"
        var feedback = "# TYPE osprey_competition_feedback_total counter\n"
        var reward = "# TYPE osprey_competition_reward_sum counter\n"
        var share = "# TYPE osprey_competition_challenger_share gauge\n"
        for model in manager.registry.all {
            guard let c = model.competition else { continue }
            let champion = model.version.number
            let name = Self.label(model.name)
            share += "osprey_competition_challenger_share\(name) \(c.challengerShare(champion: champion))\n"
            for arm in c.standings(champion: champion) {
                let label = String(name.dropLast()) + ",version=\"\(arm.version)\"}"
                users += "osprey_competition_users\(label) \(arm.users)\n"
                decisions += "osprey_competition_decisions_total\(label) \(arm.decisions)\n"
                feedback += "osprey_competition_feedback_total\(label) \(arm.feedback)\n"
                reward += "osprey_competition_reward_sum\(label) \(arm.rewardSum)\n"
            }
        }
        return users + decisions + feedback + reward + share
    }

    /// `{model="name"}` with the name escaped.
    static func label(_ model: String) -> String {
        var label = "{model="
        JSONWriter.appendString(model, to: &label)
        return label + "}"
    }
}
