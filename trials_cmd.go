package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"vigil/admin"
	"vigil/config"
	"vigil/problem"
	"vigil/reading"
	"vigil/trial"
)

const trialsUsage = `usage:
  vigil trials apply [--url URL] [--token TOKEN] [--reason TEXT] [--dry-run] FILE.yaml
  vigil trials get   [--url URL] [--token TOKEN] TRIAL

apply checks a trials file (a protocol and, optionally, its patients) and
lists every problem; if there is none it PUTs the protocol, then each
patient's registry record, with an admin token, printing one line per
record. The reason is written to the audit trail of every change.
See docs/examples/trial-T008.yaml.

get prints a trial's protocol as YAML that apply accepts.

The token defaults to $VIGIL_TOKEN, the URL to http://$VIGIL_ADDR.
`

// errTrialsFailed makes the command exit 1 once it printed what failed.
var errTrialsFailed = errors.New("trials: some changes were not applied")

// trialsCmd runs `vigil trials apply|get`.
func trialsCmd(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("trials: usage: vigil trials apply|get … (vigil trials -h for more)")
	}
	switch args[0] {
	case "apply":
		return trialsApply(ctx, args[1:], out)
	case "get":
		return trialsGet(ctx, args[1:], out)
	case "-h", "--help", "help":
		fmt.Fprint(out, trialsUsage)
		return flag.ErrHelp
	}
	return fmt.Errorf("trials: unknown subcommand %q (vigil trials -h for help)", args[0])
}

// trialsClient holds what both subcommands take from flags.
type trialsClient struct {
	url, token string
	http       *http.Client
}

func trialsFlags(name string, out io.Writer) (*flag.FlagSet, *trialsClient, error) {
	cfg, _, err := config.Load(name+"-env", nil)
	if err != nil {
		return nil, nil, err
	}
	c := &trialsClient{http: &http.Client{Timeout: 30 * time.Second}}
	fs := flag.NewFlagSet("trials "+name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.url, "url", "http://"+cfg.Addr, "server base URL")
	fs.StringVar(&c.token, "token", os.Getenv("VIGIL_TOKEN"), "VIGIL_TOKEN: admin token (staff token for get)")
	return fs, c, nil
}

// parseInterleaved parses flags given before or after the positional
// arguments (`apply FILE --reason x` as well as `apply --reason x FILE`),
// which the flag package alone stops at the first positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func trialsApply(ctx context.Context, args []string, out io.Writer) error {
	fs, c, err := trialsFlags("apply", out)
	if err != nil {
		return err
	}
	reason := fs.String("reason", "", "why: written to the audit record of every change (default: the server's)")
	dryRun := fs.Bool("dry-run", false, "check the file only; send nothing")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("trials apply: give exactly one FILE.yaml")
	}
	name := pos[0]
	data, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("trials apply: %w", err)
	}
	f, err := trial.DecodeFile(data)
	if err == nil {
		err = f.Validate()
	}
	if err != nil {
		var (
			de *trial.DecodeError
			ve *trial.ValidationError
		)
		var errs []reading.FieldError
		switch {
		case errors.As(err, &de):
			errs = de.Errors
		case errors.As(err, &ve):
			errs = ve.Errors
		default:
			return fmt.Errorf("trials apply: %s: %w", name, err)
		}
		for _, fe := range errs {
			if fe.Field == "" {
				fmt.Fprintf(out, "%s: %s\n", name, fe.Message)
			} else {
				fmt.Fprintf(out, "%s: %s: %s\n", name, fe.Field, fe.Message)
			}
		}
		return fmt.Errorf("trials apply: %s: %d problem(s); nothing was sent", name, len(errs))
	}
	if *dryRun {
		fmt.Fprintf(out, "%s: trial %s and %d patient(s) are valid\n", name, f.TrialID, len(f.Patients))
		return nil
	}
	if c.token == "" {
		return errors.New("trials apply: an admin token is required: --token or VIGIL_TOKEN")
	}

	// Store-assigned fields are left out, so the body is what the file says.
	body, err := json.Marshal(protocolBody(f.Protocol))
	if err != nil {
		return err
	}
	var stored trial.Protocol
	path := "/v1/trials/" + url.PathEscape(f.TrialID)
	if !c.do(ctx, out, http.MethodPut, path, *reason, body, &stored, "protocol "+f.TrialID) {
		// Patients are checked against the protocol; without it, stop.
		return errTrialsFailed
	}
	fmt.Fprintf(out, "protocol %s: version %d, %d site(s), updated %s\n",
		stored.TrialID, stored.Version, len(stored.Sites), stored.UpdatedAt.UTC().Format(time.RFC3339))

	failed := 0
	for _, r := range f.Patients {
		what := "patient " + r.SiteID + "/" + r.PatientID
		body, err := json.Marshal(patientBody{Status: r.Status, SpO2Scale: r.SpO2Scale, Baseline: r.Baseline})
		if err != nil {
			return err
		}
		var rec trial.PatientRecord
		path := "/v1/trials/" + url.PathEscape(f.TrialID) + "/sites/" + url.PathEscape(r.SiteID) +
			"/patients/" + url.PathEscape(r.PatientID)
		if !c.do(ctx, out, http.MethodPut, path, *reason, body, &rec, what) {
			failed++
			continue
		}
		scale := "spo2 scale from the app"
		if rec.SpO2Scale != 0 {
			scale = fmt.Sprintf("spo2 scale %d", rec.SpO2Scale)
		}
		fmt.Fprintf(out, "%s: version %d, %s, %s\n", what, rec.Version, rec.Status, scale)
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d patient(s) failed", errTrialsFailed, failed, len(f.Patients))
	}
	return nil
}

// protocolBody is a protocol as sent: without version and updated_at.
func protocolBody(p trial.Protocol) map[string]any {
	b, _ := json.Marshal(p) // a decoded protocol always encodes
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	delete(m, "version")
	delete(m, "updated_at")
	return m
}

type patientBody struct {
	Status    string          `json:"status"`
	SpO2Scale int             `json:"spo2_scale,omitempty"`
	Baseline  *reading.Vitals `json:"baseline,omitempty"`
}

// do sends one request and decodes a 2xx reply into into. On failure it
// prints what failed, with the server's problem details, and returns false.
func (c *trialsClient) do(ctx context.Context, out io.Writer, method, path, reason string, body []byte, into any, what string) bool {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.url, "/")+path, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintf(out, "%s: %v\n", what, err)
		return false
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if reason != "" {
		// A header, not the query: a reason may name a clinical fact, and
		// query strings end up in access logs.
		req.Header.Set(admin.ReasonHeader, reason)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		fmt.Fprintf(out, "%s: %v\n", what, err)
		return false
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		fmt.Fprintf(out, "%s: reading the reply: %v\n", what, err)
		return false
	}
	if resp.StatusCode/100 != 2 {
		printProblem(out, what, resp.StatusCode, data)
		return false
	}
	if err := json.Unmarshal(data, into); err != nil {
		fmt.Fprintf(out, "%s: unexpected reply (%d): %v\n", what, resp.StatusCode, err)
		return false
	}
	return true
}

func printProblem(out io.Writer, what string, status int, data []byte) {
	var p problem.Details
	if err := json.Unmarshal(data, &p); err != nil || p.Title == "" {
		fmt.Fprintf(out, "%s: HTTP %d: %s\n", what, status, strings.TrimSpace(string(data)))
		return
	}
	line := fmt.Sprintf("%s: %d %s", what, status, p.Title)
	if p.Detail != "" {
		line += ": " + p.Detail
	}
	fmt.Fprintln(out, line)
	for _, fe := range p.Errors {
		if fe.Field == "" {
			fmt.Fprintf(out, "  %s\n", fe.Message)
		} else {
			fmt.Fprintf(out, "  %s: %s\n", fe.Field, fe.Message)
		}
	}
}

func trialsGet(ctx context.Context, args []string, out io.Writer) error {
	fs, c, err := trialsFlags("get", out)
	if err != nil {
		return err
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("trials get: give exactly one TRIAL")
	}
	if c.token == "" {
		return errors.New("trials get: a staff token is required: --token or VIGIL_TOKEN")
	}
	var p trial.Protocol
	if !c.do(ctx, out, http.MethodGet, "/v1/trials/"+url.PathEscape(pos[0]), "", nil, &p, "trial "+pos[0]) {
		return errTrialsFailed
	}
	var y bytes.Buffer
	enc := yaml.NewEncoder(&y)
	enc.SetIndent(2) // as the example files are written
	if err := enc.Encode(p); err != nil {
		return fmt.Errorf("trials get: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("trials get: %w", err)
	}
	// version and updated_at are the store's; as a comment they inform
	// without becoming part of a file that is applied again.
	fmt.Fprintf(out, "# trial %s, protocol version %d, updated %s\n%s",
		p.TrialID, p.Version, p.UpdatedAt.UTC().Format(time.RFC3339), y.Bytes())
	return nil
}
