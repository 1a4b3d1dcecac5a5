# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Plugins that real Ceilometer and Aodh load through their own entry
points (``ceilometer.event.publisher``, ``aodh.notifier``).

They use neither project's code, only its calling conventions, so
doctor_plugin installs and runs without them, and they load in those
services' processes without pulling anything of doctor_plugin's services
in.
"""
