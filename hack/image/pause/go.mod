module egain-token-operator/hack/image/pause

go 1.19
