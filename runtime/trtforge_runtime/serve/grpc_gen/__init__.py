"""Generated gRPC stubs of the Open Inference Protocol (scripts/generate.sh); only the .proto is edited by hand."""
