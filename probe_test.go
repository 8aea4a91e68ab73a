package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			return
		}
		http.Error(w, "draining", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	tests := []struct {
		args    []string
		wantErr bool
	}{
		{[]string{srv.URL + "/readyz"}, false},
		{[]string{srv.URL + "/other"}, true},
		{[]string{"http://127.0.0.1:1/readyz"}, true},
		{nil, true},
	}
	for _, tt := range tests {
		if err := probe(context.Background(), tt.args); (err != nil) != tt.wantErr {
			t.Errorf("probe(%v) = %v, want error %v", tt.args, err, tt.wantErr)
		}
	}
}
