-- Argo CD action `renew` of an EgainToken: the request `kubectl egaintoken
-- renew` makes, a new value of egain.cloud/refresh-requested-at (here the
-- time in UTC, to the second: Argo CD's Lua has no finer clock).
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["egain.cloud/refresh-requested-at"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
