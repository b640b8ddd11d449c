-- Argo CD actions of an EgainToken: `renew`, always offered.
local actions = {}
actions["renew"] = {["disabled"] = false}
return actions
