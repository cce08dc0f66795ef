module flocker.test/flocker-go-check

go 1.21

require github.com/clusterhq/flocker-go v0.0.0-20160920122132-2b8b7259d313
