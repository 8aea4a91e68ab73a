// Package metrics owns Vigil's Prometheus metrics: the one place global mutable
// state is allowed. Every package records through these collectors; /metrics
// serves Registry.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry holds Vigil's collectors and the Go runtime's.
var Registry = prometheus.NewRegistry()

var (
	// ReadingsAccepted counts readings acknowledged with 2xx, by endpoint
	// ("single", "batch") and outcome ("new", "duplicate").
	ReadingsAccepted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_readings_accepted_total",
		Help: "Readings acknowledged with 2xx.",
	}, []string{"outcome"})
	// ReadingsRejected counts refused readings by reason.
	ReadingsRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_readings_rejected_total",
		Help: "Readings refused, by reason.",
	}, []string{"reason"})
	// ScoringLatency is the time from receipt to a stored score.
	ScoringLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "vigil_scoring_latency_seconds",
		Help:    "Time from a reading's receipt to its stored, published score.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	// QueueDepth is the number of scoring tasks waiting or running.
	QueueDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_scoring_queue_depth",
		Help: "Scoring tasks submitted and not yet finished.",
	})
	// AlertsOpened counts alerts opened, by severity.
	AlertsOpened = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_alerts_opened_total",
		Help: "Alerts opened, by severity.",
	}, []string{"severity"})
	// ScoringErrors counts readings whose scoring failed and was left for the
	// recovery sweep.
	ScoringErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_scoring_errors_total",
		Help: "Scoring attempts that failed (the reading is retried by the sweep).",
	})
	// HubSessions is the number of open WebSocket sessions.
	HubSessions = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_hub_sessions",
		Help: "Open WebSocket sessions.",
	})
	// HubSlowClosed counts sessions closed 4008 for not keeping up.
	HubSlowClosed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_hub_slow_sessions_closed_total",
		Help: "Sessions closed because their send queue was full.",
	})
	// HubDelivered counts events written to sessions.
	HubDelivered = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_hub_events_delivered_total",
		Help: "Events queued to WebSocket sessions.",
	})
)

// Stages of the path not covered above: HTTP, the scoring queue's wait, the
// bus, the hub's rooms and drops, and the alerts' lifecycle.
var (
	// HTTPRequests counts requests by route pattern (never the raw path,
	// which holds ids) and status code.
	HTTPRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_http_requests_total",
		Help: "HTTP requests, by route pattern and status code.",
	}, []string{"route", "code"})
	// HTTPSeconds is the time to answer a request, by route pattern.
	HTTPSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vigil_http_request_seconds",
		Help:    "Time to answer an HTTP request, by route pattern.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route"})
	// ScoringQueueWait is the time an admitted reading waits for a scoring
	// worker.
	ScoringQueueWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "vigil_scoring_queue_wait_seconds",
		Help:    "Time an admitted reading waits for a scoring worker.",
		Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	})
	// BusPublished counts events handed to the bus, by outcome: ok, error
	// (refused: kept for republishing), queued (behind refused ones).
	BusPublished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_bus_published_total",
		Help: "Events published on the bus, by outcome (ok; error and queued: kept and republished in order).",
	}, []string{"outcome"})
	// BusPublishSeconds is the duration of one publish.
	BusPublishSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "vigil_bus_publish_seconds",
		Help:    "Duration of one publish on the bus.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1},
	})
	// BusRepublishQueue is the number of events waiting to be published
	// again after the bus refused them.
	BusRepublishQueue = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_bus_republish_queue",
		Help: "Events the bus refused, waiting to be published again.",
	})
	// HubRooms is the number of rooms with a session on this node.
	HubRooms = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_hub_rooms",
		Help: "Rooms with at least one session on this node.",
	})
	// HubFramesDropped counts frames a session did not get because it was
	// closed as too slow (it recovers them from history on reconnecting).
	HubFramesDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_hub_frames_dropped_total",
		Help: "Frames dropped from send queues of sessions closed as too slow (recovered from history on reconnect).",
	})
	// AlertTransitions counts alerts entering a state through the lifecycle
	// (acknowledged, escalated, resolved); opening is AlertsOpened.
	AlertTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_alert_transitions_total",
		Help: "Alert lifecycle transitions, by the state entered.",
	}, []string{"state"})
)

// Notification delivery, by channel kind (webhook, pagerduty, email, board,
// other). Failed counts every failed attempt, including the last one of a
// notification that is then dead-lettered, so failed minus dead is retries.
var (
	// NotificationsSent counts notifications delivered.
	NotificationsSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_notifications_sent_total",
		Help: "Notifications delivered, by channel kind.",
	}, []string{"kind"})
	// NotificationsFailed counts failed delivery attempts.
	NotificationsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_notifications_failed_total",
		Help: "Failed notification delivery attempts, by channel kind.",
	}, []string{"kind"})
	// NotificationsDead counts notifications given up on (dead letters):
	// each one is a person who was not told, so alert on any increase.
	NotificationsDead = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_notifications_dead_total",
		Help: "Notifications dead-lettered after a permanent error or too many attempts, by channel kind.",
	}, []string{"kind"})
)

// The risk model (predictor-py over gRPC).
var (
	// PredictorCalls counts calls to predictor-py by outcome: ok, error,
	// timeout, invalid (the service refused the request: Go and Python
	// disagree on the features), or rejected (the breaker was open and no
	// call was made).
	PredictorCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_predictor_calls_total",
		Help: "Calls to predictor-py, by outcome (ok, error, timeout, invalid, rejected by the open breaker).",
	}, []string{"outcome"})
	// PredictorBatchSize is the number of predictions per call.
	PredictorBatchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "vigil_predictor_batch_size",
		Help:    "Predictions per call to predictor-py.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
	})
	// PredictorCallSeconds is the duration of one call.
	PredictorCallSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "vigil_predictor_call_seconds",
		Help:    "Duration of calls to predictor-py.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25},
	})
	// PredictorBreakerState is the circuit breaker's state: 0 closed,
	// 1 half-open, 2 open.
	PredictorBreakerState = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_predictor_breaker_state",
		Help: "Circuit breaker of the predictor client: 0 closed, 1 half-open, 2 open.",
	})
	// ScoresDegraded counts scores made by the rules alone because the
	// configured predictor did not answer.
	ScoresDegraded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_scores_degraded_total",
		Help: "Scores made by the rules alone because the configured predictor failed.",
	})
)

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		ReadingsAccepted, ReadingsRejected, ScoringLatency, QueueDepth,
		AlertsOpened, ScoringErrors, HubSessions, HubSlowClosed, HubDelivered,
		NotificationsSent, NotificationsFailed, NotificationsDead,
		PredictorCalls, PredictorBatchSize, PredictorCallSeconds, PredictorBreakerState, ScoresDegraded,
		HTTPRequests, HTTPSeconds, ScoringQueueWait, BusPublished, BusPublishSeconds, BusRepublishQueue,
		HubRooms, HubFramesDropped, AlertTransitions,
	)
}
