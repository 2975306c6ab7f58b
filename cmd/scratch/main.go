package main

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

func main() {
	files, _ := filepath.Glob("/tmp/day/lake/warehouse/lake.db/orders_raw/data/*/*.parquet")
	var q []string
	for _, f := range files {
		q = append(q, "'"+f+"'")
	}
	list := "[" + strings.Join(q, ",") + "]"
	db, _ := sql.Open("duckdb", "")
	db.Exec("SET TimeZone='UTC'")
	db.Exec("SET parquet_metadata_cache=true")
	for _, qs := range os.Args[1:] {
		qq := strings.ReplaceAll(qs, "FILES", "read_parquet("+list+")")
		var best time.Duration
		for i := 0; i < 6; i++ {
			t0 := time.Now()
			rows, err := db.Query(qq)
			if err != nil {
				fmt.Println(err)
				return
			}
			n := 0
			for rows.Next() {
				n++
			}
			rows.Close()
			d := time.Since(t0)
			if i == 0 || d < best {
				best = d
			}
			if i == 5 {
				fmt.Printf("%v rows=%d  %s\n", best, n, qs[:min(len(qs), 150)])
			}
		}
	}
}
