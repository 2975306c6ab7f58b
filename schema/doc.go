// Package schema knows what events are. It sits on the lake's foundation
// and under every stage:
//
//		ingest -> streamer -> (lake tables) -> compactor -> query
//		   \______ schema: registry, envelope contract, codec ______/
//		    \_____________________ lake ____________________________/
//
//	  - The envelope contract (contract.go, decode.go): what every Kafka
//	    message must be, whatever its type, and the closed set of reasons a
//	    message is rejected for (each ends in the dead-letter table).
//	  - The registry (package registry): subjects are event types, with
//	    versions and compatibility rules, behind the Confluent Schema
//	    Registry API; stored in the catalog's database or read from an
//	    external registry.
//	  - The codec: a registered schema version (JSON Schema or Avro)
//	    compiles once into a plan (model.go, compile_*.go) that checks a
//	    payload and converts its values, and into the columns of the tables
//	    that hold the type. Decoder.Decode applies the contract and the plan
//	    to one message; Appender appends the result, with its Kafka
//	    coordinates, to Arrow builders. Ingest, the hot tier and the query
//	    service's fresh rows all use them: the mapping of an event to
//	    columns exists here only.
//	  - The Resolver keeps a compiled Set of the registry current, so that
//	    decoding looks nothing up per event.
package schema
