package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// probe is a container healthcheck for images without a shell or curl
// (deploy/Dockerfile): GET the URL, succeed on 200 only.
func probe(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: vigil probe URL (e.g. http://127.0.0.1:8080/readyz)")
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe: %s answered %s", args[0], resp.Status)
	}
	return nil
}
