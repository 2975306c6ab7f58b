package objstore

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
)

// withSSE adds cfg's server-side encryption to every request that writes
// an object (PutObject, CreateMultipartUpload, CopyObject) sent with the
// AWS configuration ac. It is an API option of the shared configuration,
// so the writes iceberg-go's FileIO makes (metadata, manifests, data
// files) carry it as well as eventlake's own.
func withSSE(ac *aws.Config, cfg Config) {
	if cfg.SSE == "" {
		return
	}
	sse := types.ServerSideEncryption(cfg.SSE)
	var key *string
	if cfg.SSEKMSKeyID != "" {
		key = aws.String(cfg.SSEKMSKeyID)
	}
	set := middleware.InitializeMiddlewareFunc("eventlakeSSE", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		switch p := in.Parameters.(type) {
		case *s3.PutObjectInput:
			if p.ServerSideEncryption == "" {
				p.ServerSideEncryption, p.SSEKMSKeyId = sse, key
			}
		case *s3.CreateMultipartUploadInput:
			if p.ServerSideEncryption == "" {
				p.ServerSideEncryption, p.SSEKMSKeyId = sse, key
			}
		case *s3.CopyObjectInput:
			if p.ServerSideEncryption == "" {
				p.ServerSideEncryption, p.SSEKMSKeyId = sse, key
			}
		}
		return next.HandleInitialize(ctx, in)
	})
	ac.APIOptions = append(ac.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(set, middleware.Before)
	})
}
