package config_test

import (
	"reflect"
	"testing"

	"vigil/config"
)

func TestLoad(t *testing.T) {
	cases := []struct {
		name  string
		env   map[string]string
		args  []string
		check func(t *testing.T, c config.Config)
	}{
		{"defaults give a working single node", nil, nil, func(t *testing.T, c config.Config) {
			if c.Addr != "127.0.0.1:8080" || c.DB != "sqlite://./data/vigil.db" || c.RedisURL != "" ||
				c.JWTIssuer != "vigil" || c.JWTAudience != "vigil" || c.RatePerPatient != 60 || c.RatePerIP != 6000 {
				t.Fatalf("defaults %+v", c)
			}
			if c.SQLitePath() != "./data/vigil.db" {
				t.Fatalf("sqlite path %q", c.SQLitePath())
			}
		}},
		{"environment", map[string]string{"VIGIL_ADDR": "0.0.0.0:9000", "VIGIL_RATE_PER_PATIENT": "0",
			"VIGIL_ALLOWED_ORIGINS": " a.example.org, *.b.org ,"}, nil, func(t *testing.T, c config.Config) {
			if c.Addr != "0.0.0.0:9000" || c.RatePerPatient != 0 {
				t.Fatalf("env not applied: %+v", c)
			}
			if got := c.Origins(); !reflect.DeepEqual(got, []string{"a.example.org", "*.b.org"}) {
				t.Fatalf("origins %q", got)
			}
		}},
		{"flags override environment", map[string]string{"VIGIL_ADDR": "0.0.0.0:9000", "VIGIL_DB": "sqlite:///x.db"},
			[]string{"--addr", "127.0.0.1:0", "--rate-per-ip=5"}, func(t *testing.T, c config.Config) {
				if c.Addr != "127.0.0.1:0" || c.RatePerIP != 5 || c.DB != "sqlite:///x.db" {
					t.Fatalf("flags not applied over env: %+v", c)
				}
			}},
		{"postgres is not sqlite", map[string]string{"VIGIL_DB": "postgres://u@h/db"}, nil, func(t *testing.T, c config.Config) {
			if c.SQLitePath() != "" {
				t.Fatalf("sqlite path %q for postgres", c.SQLitePath())
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, _, err := config.Load("test", tc.args)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
	t.Run("bad number", func(t *testing.T) {
		t.Setenv("VIGIL_RATE_PER_IP", "lots")
		if _, _, err := config.Load("test", nil); err == nil {
			t.Fatal("accepted VIGIL_RATE_PER_IP=lots")
		}
	})
}
