package streamer

import (
	"context"

	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/lake"
)

type icebergTable = table.Table

func removeFile(ctx context.Context, tbl *table.Table, path string) error {
	return lake.RemoveFile(ctx, tbl, path)
}
