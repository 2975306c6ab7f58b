package query

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkModelAnswer24h measures the 24 h answers of the shipped models
// at 1-minute grain from the hot tier (docs/BENCHMARKS.md, the query run,
// measures the same requests on the 10M-event day through HTTP): the
// handler alone, without a connection.
func BenchmarkModelAnswer24h(b *testing.B) {
	h, _ := startModels(b, shippedOverOrders(), 700)
	handler := h.svc.Handler()
	day := "from=" + t0.Format(time.RFC3339) + "&to=" + t0.Add(24*time.Hour).Format(time.RFC3339)
	for _, c := range []struct{ name, path string }{
		{"revenue_endpoint", "/v1/metrics/order_revenue_minute?" + day},
		{"order_revenue_minute", "/v1/models/order_revenue_minute?" + day},
		{"order_metrics", "/v1/models/order_metrics?" + day},
		{"product_revenue_hour_one", "/v1/models/product_revenue_hour?product_id=p-1&" + day},
		{"order_metrics_every_all", "/v1/models/order_metrics?every=all&" + day},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
