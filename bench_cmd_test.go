//go:build linux

package main

import (
	"reflect"
	"testing"
)

func TestBenchCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bin/vigil", "bench"}, "bin/vigil bench"},
		{[]string{"bin/vigil", "bench", "--jwt-secret", "s3cret", "--url", "http://127.0.0.1:8080"},
			"bin/vigil bench --jwt-secret … --url http://127.0.0.1:8080"},
		{[]string{"vigil", "bench", "--jwt-secret=s3cret"}, "vigil bench --jwt-secret=…"},
		{[]string{"vigil", "bench", "--postgres-url", "postgres://bench:pw@127.0.0.1:5432/postgres?sslmode=disable"},
			"vigil bench --postgres-url 'postgres://bench:…@127.0.0.1:5432/postgres?sslmode=disable'"},
		{[]string{"vigil", "bench", "--redis-url=redis://:pw@127.0.0.1:6379/0"}, "vigil bench --redis-url=redis://:…@127.0.0.1:6379/0"},
		{[]string{"vigil", "bench", "--out", ""}, "vigil bench --out ''"},
		{[]string{"vigil", "bench", "--ramp", "10, 25"}, "vigil bench --ramp '10, 25'"},
	} {
		if got := commandLine(tc.args); got != tc.want {
			t.Errorf("commandLine(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestBenchParseFloats(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []float64
		err  bool
	}{
		{"10,25,50,100", []float64{10, 25, 50, 100}, false},
		{" 2.5 , 5 ", []float64{2.5, 5}, false},
		{"", nil, false},
		{"10,x", nil, true},
		{"10,0", nil, true},
		{"-5", nil, true},
	} {
		got, err := parseFloats(tc.in)
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseFloats(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}
