"""The set of targets and how it changes: the configuration's, plus what discovery finds.

``topology`` holds the targets per cloud and asks ``discovery`` (the Keystone catalog or Huawei IAM's
projects) for regions and endpoints; ``retarget`` moves the whole daemon (service, scheduler, read API) to a
new set, in one visible order.

May import: ``poll``, ``auth``, ``signals``, ``store``, ``config``, ``domain``.
"""
