package streamer

import (
	"context"

	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/internal/lakefile"
)

type icebergTable = table.Table

func removeFile(ctx context.Context, tbl *table.Table, path string) error {
	return lakefile.Remove(ctx, tbl, path)
}
