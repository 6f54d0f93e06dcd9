package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// GET /metrics serves Options.Metrics; without it the path is 404, and
// other methods are 405.
func TestMetricsRoute(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "raftogram_up 1\n") })
	h := Handler(fakeNode{}, Options{Metrics: metrics})
	for _, tc := range []struct {
		method string
		h      http.Handler
		code   int
		body   string
	}{
		{http.MethodGet, h, http.StatusOK, "raftogram_up 1\n"},
		{http.MethodPost, h, http.StatusMethodNotAllowed, ""},
		{http.MethodGet, Handler(fakeNode{}, Options{}), http.StatusNotFound, ""},
	} {
		rec := httptest.NewRecorder()
		tc.h.ServeHTTP(rec, httptest.NewRequest(tc.method, "/metrics", nil))
		if rec.Code != tc.code || (tc.body != "" && rec.Body.String() != tc.body) {
			t.Errorf("%s /metrics = %d %q, want %d %q", tc.method, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
	}
}
