package postgres

import (
	"io/fs"
	"path"
	"strconv"
	"strings"
	"testing"
)

// embeddedMigrations returns how many migrations the store embeds and the
// highest version among them.
func embeddedMigrations(t *testing.T) (n int, latest int64) {
	t.Helper()
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("embedded migrations: %v %v", names, err)
	}
	for _, name := range names {
		base := path.Base(name)
		v, err := strconv.ParseInt(base[:strings.IndexByte(base, '_')], 10, 64)
		if err != nil {
			t.Fatalf("migration name %s: %v", base, err)
		}
		latest = max(latest, v)
	}
	return len(names), latest
}
